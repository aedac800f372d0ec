"""Strings that try to break SQL literals and load files: fixed cases and a seeded generator."""

from __future__ import annotations

import random

# Every ASCII character, the escapes' own characters doubled up, and UTF-8 of 2, 3 and 4 bytes.
ASCII = "".join(chr(code) for code in range(0x80))
SPECIAL = "\\'\"\0\n\r\x1a\t`%_;"
UNICODE = "éßÆ€中文日本語한국어\u200b\u00a0\ufeff\ufffd\U0001f600\U0001f4a9\U0001f1fa\U0001f1f8\U00010348\U0010ffff"
FIXED_CASES = (
    "",
    " ",
    "'",
    "''",
    "\\",
    "\\\\",
    "\\'",
    "'\\",
    '"',
    "\0",
    "\\0",
    "\n",
    "\r\n",
    "\x1a",
    "\\Z",
    "\\N",
    "NULL",
    "');DROP TABLE company_upsell_signals;--",
    "a\tb",
    "trailing space ",
    "\U0001f600",
)


def random_strings(seed: int, count: int, max_length: int) -> list[str]:
    """`count` strings of 0..max_length characters, heavy in specials, every ASCII code included."""
    rng = random.Random(seed)
    alphabet = ASCII + SPECIAL * 4 + UNICODE
    strings = [rng.choice(SPECIAL) * rng.randint(0, max_length) for _ in range(count // 10)]
    strings += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, max_length))) for _ in range(count - len(strings))]
    # Every code point 0x00-0x7f somewhere, whatever the draw.
    for start in range(0, 0x80, max_length):
        strings[start // max_length % len(strings)] = ASCII[start : start + max_length]
    return strings


def at_limit(length: int) -> list[str]:
    """Strings of exactly `length` characters that grow most when escaped or encoded."""
    return ["\\" * length, "'" * length, "\0" * length, "\U0001f600" * length, ("\\'\U0001f600\0" * length)[:length]]
