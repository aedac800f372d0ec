"""Checksums an applied version may carry besides its files' own: its files before an equivalent rewrite.

Versions 0001-0005, 0007, 0008 and 0010 were rewritten to be safe to run again after a kill
between their DDL and their record (IF NOT EXISTS / IF EXISTS added, nothing else): the
same schema, new bytes. A database that applied the earlier files keeps their checksum
recorded (an older migrate function, after a rollback, still accepts it) and is not refused.
Any other difference is an edit and is refused.
"""

from __future__ import annotations

EQUIVALENT_EARLIER_CHECKSUMS: dict[int, frozenset[str]] = {
    1: frozenset({"8e4ed6e09b778da7a8e8e019d559f4f6be7396cdd625f96b81e89f61ae61684e"}),
    2: frozenset({"1f03f443196db88e6bd673adfbb88ed14fd5bb1fae2c715dae1430d00912db1a"}),
    3: frozenset({"76e6c2f9efdbf5bfbaa8b42cc588f0426ffb952196d25b57a6ec9f39bbdaedc7"}),
    4: frozenset({"dd227f7d88ca40ba3de26bafa194f163ca432afde486efe8fbe5d1637525d817"}),
    5: frozenset({"d48039111f1531444c30165380ce959cffdf90c9d4a6c5a79d68f182b0046b83"}),
    7: frozenset({"0818afb89bc4d6f90880c61312641b9cfec5eea6e8e92de7d14cc5e57600b70b"}),
    8: frozenset({"e932b93832d112b89b0d941f33ebb8cf5b7914db42723e1fb13f2228d427a2ee"}),
    10: frozenset({"cf655cd46390af4aaae24eb39a6538c9b7f6bb97ce1d17d25546d1f4b5b06ba4"}),
}
