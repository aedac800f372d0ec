"""Lambda layers built without Docker: pip's --platform wheels, trimmed, then size-checked."""
