"""The duplicate-key finder: exact whatever the hash does, in several passes, on every key type a file may hold."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from functions.ingest.duplicate_keys import VECTOR_HASH_BYTES, find_duplicate_keys, key_hashes
from functions.ingest.parquet_reader import SignalFile
from tests.factories import snowflake_table


def batches_of(keys: pa.Array, rows: int) -> Callable[[], Iterator[pa.Array]]:
    """A re-readable key column, `rows` at a time, as SignalFile yields it."""

    def read() -> Iterator[pa.Array]:
        for start in range(0, len(keys), rows):
            yield keys.slice(start, rows)

    return read


def as_counts(duplicates: pa.Table) -> dict[str, int]:
    return dict(zip(duplicates.column("key").to_pylist(), duplicates.column("copies").to_pylist(), strict=True))


def one_hash_for_every_key(keys: pa.Array) -> pa.Array:
    return pa.repeat(pa.scalar(42, pa.uint64()), len(keys))


def test_keys_whose_hashes_collide_are_told_apart_by_their_real_bytes() -> None:
    # Given a hash that gives every key the same value
    keys = pa.array(["a", "b", "a", "c", "b", "a", "d"])

    # When the duplicates are found
    duplicates = find_duplicate_keys(batches_of(keys, 3), len(keys), hash_keys=one_hash_for_every_key)

    # Then only the keys really held more than once are listed, with their true counts
    assert as_counts(duplicates) == {"a": 3, "b": 2}


@pytest.mark.parametrize("hash_keys", [key_hashes, one_hash_for_every_key], ids=["real hash", "all collide"])
@pytest.mark.parametrize(
    ("hashes_per_pass", "hashes_per_sort"),
    [(1_000_000, 1_000_000), (1_000_000, 50), (700, 100)],
    ids=["one pass, one sort", "one pass, many ranges", "three passes of seven ranges"],
)
def test_every_repeated_key_is_found_with_its_count(
    hash_keys: Callable[[pa.Array], pa.Array], hashes_per_pass: int, hashes_per_sort: int
) -> None:
    # Given 2,000 keys of 1 to 90 bytes drawn from 1,500 names (many repeats, some three or more
    # times, copies in batches of different widths) and a few nulls
    draw = random.Random(3)
    numbers = [draw.randrange(1_500) for _ in range(2_000)]
    names: list[str | None] = [f"{number}" + "x" * (number % 90) for number in numbers] + [None] * 5
    draw.shuffle(names)
    keys = pa.array(names, pa.string())

    # When the duplicates are found, in one pass or several, sorting all hashes at once or by range
    duplicates = find_duplicate_keys(
        batches_of(keys, 128), len(keys), hash_keys=hash_keys, hashes_per_pass=hashes_per_pass, hashes_per_sort=hashes_per_sort
    )

    # Then they are exactly the keys counted more than once, nulls never among them
    expected = {name: copies for name, copies in Counter(name for name in names if name is not None).items() if copies > 1}
    assert as_counts(duplicates) == expected


def test_a_file_without_repeats_has_no_duplicates_and_reads_the_keys_once() -> None:
    reads = []
    keys = pa.array([f"k{index}" for index in range(1_000)])

    def read() -> Iterator[pa.Array]:
        reads.append(1)
        yield from batches_of(keys, 100)()

    assert find_duplicate_keys(read, len(keys)).num_rows == 0
    assert len(reads) == 1


def test_key_hashes_depend_on_every_byte_and_the_length() -> None:
    long_key = "x" * (VECTOR_HASH_BYTES + 1)
    keys = pa.array(["", "\0", "a", "a\0", "abcdefgh", "abcdefgi", "abcdefgha", long_key, long_key[:-1] + "y", "a"])

    hashes = key_hashes(keys).to_pylist()

    assert hashes[-1] == hashes[2]
    assert len(set(hashes[:-1])) == len(keys) - 1
    assert key_hashes(pa.array([long_key, "a"])).to_pylist() == [hashes[7], hashes[2]]


def test_dictionary_large_and_integer_keys_and_invalid_utf8_compare_as_today(tmp_path: Path) -> None:
    # Given files whose key column is dictionary-encoded, large_string, integer, or holds invalid UTF-8 bytes
    base = snowflake_table(6, seed=1)
    key_index = base.schema.get_field_index("CDMS_CANONICAL_COMPANY_ID")
    invalid = pa.array([b"\xff\xfe", b"\xff\xfe", b"\xff", b"ok", None, None], pa.binary()).view(pa.string())
    variants = {
        "dictionary": pa.array(["a", "b", "a", None, "c", "a"]).dictionary_encode(),
        "large_string": pa.array(["a", "b", "a", None, "c", "a"], pa.large_string()),
        "integer": pa.array([7, 8, 7, None, 9, 7], pa.int64()),
        "invalid utf-8": invalid,
    }
    found = {}
    for name, keys in variants.items():
        path = tmp_path / f"{name}.parquet"
        pq.write_table(base.set_column(key_index, "CDMS_CANONICAL_COMPANY_ID", keys), path, row_group_size=2)

        # When the file's duplicates are found
        duplicates = SignalFile(path).duplicate_keys()
        keys_found = duplicates.column("key").combine_chunks().view(pa.binary()).to_pylist()
        found[name] = dict(zip(keys_found, duplicates.column("copies").to_pylist(), strict=True))

    # Then they are found by value, as validation compares them (text, byte for byte), nulls never;
    # a key that is not UTF-8 is no duplicate to report: every copy of it is rejected for that
    assert found["dictionary"] == found["large_string"] == {b"a": 3}
    assert found["integer"] == {b"7": 3}
    assert found["invalid utf-8"] == {}
