"""Lambda's hard limit: function code plus all its layers, unzipped, at most 250 MB."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from layers.wheels import REPO_ROOT, tree_size

LAMBDA_UNZIPPED_LIMIT_BYTES = 262_144_000  # 250 MB as Lambda counts it (250 * 1024 * 1024)
# What the function's own code asset holds (infra/constructs/code.py stages the same folders).
FUNCTION_CODE_DIRS = ("functions", "migrations")
MB = 1024 * 1024  # Lambda's "MB" in its quotas


class SizeLimitExceeded(RuntimeError):
    """Function plus layers would not deploy: Lambda refuses more than 250 MB unzipped."""


@dataclass(frozen=True, kw_only=True)
class SizeReport:
    """Unzipped bytes per part, and the total against Lambda's limit."""

    parts: dict[str, int]

    @property
    def total_bytes(self) -> int:
        return sum(self.parts.values())

    def describe(self) -> str:
        lines = [f"  {name:<10} {size / MB:8.1f} MB" for name, size in self.parts.items()]
        lines.append(f"  {'total':<10} {self.total_bytes / MB:8.1f} MB of {LAMBDA_UNZIPPED_LIMIT_BYTES / MB:.0f} MB allowed")
        return "\n".join(lines)


def function_code_bytes(root: Path = REPO_ROOT) -> int:
    """Unzipped bytes of the function asset, without bytecode caches (excluded from the asset too)."""
    total = 0
    for folder in FUNCTION_CODE_DIRS:
        for item in (root / folder).rglob("*"):
            if item.is_file() and "__pycache__" not in item.parts and item.suffix != ".pyc":
                total += item.stat().st_size
    return total


def check_size(
    layers: dict[str, Path], *, function_bytes: int | None = None, limit: int = LAMBDA_UNZIPPED_LIMIT_BYTES
) -> SizeReport:
    """Measure function + layers; raise SizeLimitExceeded naming each part when over `limit`."""
    parts = {"function": function_code_bytes() if function_bytes is None else function_bytes}
    parts.update({name: tree_size(path) for name, path in layers.items()})
    report = SizeReport(parts=parts)
    if report.total_bytes > limit:
        raise SizeLimitExceeded(f"function plus layers exceed Lambda's {limit} bytes unzipped:\n{report.describe()}")
    return report
