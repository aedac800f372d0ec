"""Find the keys a file holds more than once, in memory that does not grow with the file.

Each key is hashed to 64 bits with pyarrow compute (the layer ships no numpy, and pyarrow
has no 64-bit hash kernel). A pass over the key column holds the hashes of at most
HASHES_PER_PASS rows, 8 bytes each (a larger file takes one pass per that many rows, each
keeping one range of the hash space), and sorts them HASHES_PER_SORT at a time to find the
repeated ones. A repeated hash is only a candidate: one more pass reads the keys again and
counts the real keys whose hash is a candidate, so a collision never rejects a key held
once (a file without repeats reads its keys once). Memory: at most 64 MB of hashes, about
24 MB of sorting, and the duplicated keys themselves (the set validation looks rows up in).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable

import pyarrow as pa
import pyarrow.compute as pc

from functions.ingest.text_checks import decoded_without_huge

# One pass over the keys holds at most this many hashes (64 MB); a larger file takes one
# more pass per this many rows.
HASHES_PER_PASS = 1 << 23
# The hashes of a pass are sorted in ranges of about this many (about 24 MB at the sort's peak).
HASHES_PER_SORT = 1 << 20
# Keys up to this many bytes are hashed vectorised; longer ones (rejected as too long
# anyway, and rare) one by one, so a single huge value cannot inflate a whole batch.
VECTOR_HASH_BYTES = 64
# The confirming pass counts the keys it finds in groups at least this large (or as large
# as the keys counted so far), so counting stays linear and holds little more than the keys.
CONFIRM_GROUP_ROWS = 1 << 16
# Candidate hashes confirmed per pass: each is held by two rows or more, whose keys the pass
# keeps as text, so a file made mostly of repeated keys takes a few passes, not all its keys.
CONFIRM_CANDIDATES = 1 << 17

_MULTIPLIER = pa.scalar(0x9E3779B97F4A7C15, pa.uint64())
_FMIX_1 = pa.scalar(0xFF51AFD7ED558CCD, pa.uint64())
_FMIX_2 = pa.scalar(0xC4CEB9FE1A85EC53, pa.uint64())
_SHIFT_MIX = pa.scalar(29, pa.uint64())
_SHIFT_FINAL = pa.scalar(33, pa.uint64())
_HASH_SPACE = 1 << 64

KeyBatches = Callable[[], Iterable[pa.Array]]
KeyHasher = Callable[[pa.Array], pa.Array]


def _final_mix(hashes: pa.Array) -> pa.Array:
    """MurmurHash3's 64-bit finaliser: every input bit moves every output bit."""
    hashes = pc.bit_wise_xor(hashes, pc.shift_right(hashes, _SHIFT_FINAL))
    hashes = pc.multiply(hashes, _FMIX_1)
    hashes = pc.bit_wise_xor(hashes, pc.shift_right(hashes, _SHIFT_FINAL))
    hashes = pc.multiply(hashes, _FMIX_2)
    return pc.bit_wise_xor(hashes, pc.shift_right(hashes, _SHIFT_FINAL))


def _word_hashes(keys: pa.Array, lengths: pa.Array) -> pa.Array:
    """Hash of each key's length and bytes, read as 8-byte words (the last one zero-padded)."""
    width = max(8, -(-(pc.max(lengths).as_py() or 0) // 8) * 8)
    words_per_key = width // 8
    fixed = pc.ascii_rpad(keys, width, padding="\0").view(pa.binary()).cast(pa.binary(width))
    words = pa.Array.from_buffers(
        pa.uint64(), len(keys) * words_per_key, [None, fixed.buffers()[1]], offset=fixed.offset * words_per_key
    )
    first_words = pc.multiply(pc.indices_nonzero(pc.is_valid(lengths)), pa.scalar(words_per_key, pa.uint64()))
    hashes = pc.multiply(pc.cast(lengths, pa.uint64()), _MULTIPLIER)
    for word in range(words_per_key):
        positions = pc.add(first_words, pa.scalar(word, pa.uint64())) if word else first_words
        mixed = pc.multiply(pc.bit_wise_xor(hashes, pc.take(words, positions)), _MULTIPLIER)
        mixed = pc.bit_wise_xor(mixed, pc.shift_right(mixed, _SHIFT_MIX))
        # Only a key's own words: the padding depends on the longest key of the batch, and
        # a key's hash must not.
        hashes = pc.if_else(pc.greater(lengths, 8 * word), mixed, hashes) if word else mixed
    return _final_mix(hashes)


def key_hashes(keys: pa.Array) -> pa.Array:
    """A 64-bit hash (uint64) of each key's bytes; `keys` is a string array without nulls."""
    lengths = pc.binary_length(keys)
    is_long = pc.greater(lengths, VECTOR_HASH_BYTES)
    if not pc.any(is_long).as_py():
        return _word_hashes(keys, lengths)
    hashes = _word_hashes(pc.if_else(is_long, "", keys), pc.if_else(is_long, 0, lengths))
    long_keys = keys.filter(is_long).view(pa.binary()).to_pylist()
    long_hashes = [int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") for key in long_keys]
    return pc.replace_with_mask(hashes, is_long, pa.array(long_hashes, pa.uint64()))


def comparable_keys(values: pa.Array) -> pa.Array:
    """Keys as validation compares them: decoded from a dictionary, as text, nulls dropped."""
    if pa.types.is_dictionary(values.type):
        # A huge key (rejected as too long, never a duplicate) is not copied into its rows.
        values = decoded_without_huge(values)[0]
    # Bytes seen as text without a check: a key that is not UTF-8 must not fail the count
    # (validation rejects every copy of it for that).
    if pa.types.is_binary_view(values.type) or pa.types.is_string_view(values.type):
        values = pc.cast(values, pa.binary()).view(pa.string())
    elif pa.types.is_binary(values.type):
        values = values.view(pa.string())
    elif pa.types.is_large_binary(values.type):
        values = values.view(pa.large_string())
    if not pa.types.is_string(values.type):
        values = pc.cast(values, pa.string())
    return pc.drop_null(values) if values.null_count else values


class _RepeatedHashes:
    """The hashes of one range seen more than once, kept sorted and distinct when they outgrow the budget."""

    def __init__(self, budget: int) -> None:
        self._budget = budget
        self._distinct = pa.array([], pa.uint64())
        self._pending: list[pa.Array] = []
        self._pending_rows = 0
        self._repeated: list[pa.Array] = []

    def add(self, hashes: pa.Array) -> None:
        self._pending.append(hashes)
        self._pending_rows += len(hashes)
        if self._pending_rows > self._budget:
            self._compact()

    def _compact(self) -> None:
        hashes = pa.concat_arrays([self._distinct, *self._pending])
        self._pending, self._pending_rows = [], 0
        ordered = hashes.take(pc.sort_indices(hashes))
        del hashes
        if len(ordered) < 2:
            self._distinct = ordered
            return
        same_as_previous = pc.equal(ordered.slice(1), ordered.slice(0, len(ordered) - 1))
        self._repeated.append(ordered.slice(1).filter(same_as_previous))
        self._distinct = ordered.filter(pa.concat_arrays([pa.array([True]), pc.invert(same_as_previous)]))

    def result(self) -> pa.Array:
        self._compact()
        self._distinct = pa.array([], pa.uint64())
        return pc.unique(pa.concat_arrays([pa.array([], pa.uint64()), *self._repeated]))


def _candidate_hashes(read_keys: KeyBatches, num_rows: int, hash_keys: KeyHasher, per_pass: int, per_sort: int) -> pa.Array:
    """Hashes that occur more than once: the hash space in equal ranges, a pass over the keys per `per_pass` rows."""
    passes = max(1, -(-num_rows // per_pass))
    ranges_per_pass = max(1, -(-min(num_rows, per_pass) // per_sort))
    total_ranges = passes * ranges_per_pass
    range_span = -(-_HASH_SPACE // total_ranges)
    candidates: list[pa.Array] = []
    for first_range in range(0, total_ranges, ranges_per_pass):
        ranges = [_RepeatedHashes(per_sort) for _ in range(ranges_per_pass)]
        for values in read_keys():
            hashes = hash_keys(comparable_keys(values))
            if total_ranges == 1:
                ranges[0].add(hashes)
                continue
            range_of = pc.divide(hashes, pa.scalar(range_span, pa.uint64()))
            for offset, repeated in enumerate(ranges):
                repeated.add(hashes.filter(pc.equal(range_of, pa.scalar(first_range + offset, pa.uint64()))))
        candidates.extend(repeated.result() for repeated in ranges)
    return pa.concat_arrays(candidates)


def _merge_counts(counted: pa.Table, keys: list[pa.Array]) -> pa.Table:
    found_keys = pa.concat_arrays(keys)
    found = pa.table({"key": found_keys, "copies": pa.repeat(pa.scalar(1, pa.int64()), len(found_keys))})
    merged = pa.concat_tables([counted, found]).group_by("key").aggregate([("copies", "sum")])
    return merged.rename_columns(["key", "copies"])


def _count_keys_hashed_to(read_keys: KeyBatches, candidates: pa.Array, hash_keys: KeyHasher) -> pa.Table:
    """(key, copies) of the real keys whose hash is one of `candidates`, copies > 1 only."""
    counted = pa.table({"key": pa.array([], pa.string()), "copies": pa.array([], pa.int64())})
    found: list[pa.Array] = []
    found_rows = 0
    for values in read_keys():
        keys = comparable_keys(values)
        hit = pc.is_in(hash_keys(keys), value_set=candidates)
        if pc.any(hit).as_py():
            found.append(keys.filter(hit))
            found_rows += len(found[-1])
        if found_rows > max(CONFIRM_GROUP_ROWS, counted.num_rows):
            counted, found, found_rows = _merge_counts(counted, found), [], 0
    if found:
        counted = _merge_counts(counted, found)
    return counted.filter(pc.greater(counted.column("copies"), 1))


def _confirmed(read_keys: KeyBatches, candidates: pa.Array, hash_keys: KeyHasher) -> pa.Table:
    """The candidates' real keys seen more than once: one more pass per CONFIRM_CANDIDATES hashes."""
    return pa.concat_tables(
        [
            _count_keys_hashed_to(read_keys, candidates.slice(start, CONFIRM_CANDIDATES), hash_keys)
            for start in range(0, len(candidates), CONFIRM_CANDIDATES)
        ]
    )


def find_duplicate_keys(
    read_keys: KeyBatches,
    num_rows: int,
    hash_keys: KeyHasher = key_hashes,
    hashes_per_pass: int = HASHES_PER_PASS,
    hashes_per_sort: int = HASHES_PER_SORT,
) -> pa.Table:
    """(key, copies) of every key that `read_keys()` yields more than once, exactly.

    `read_keys` starts a new read of the key column at each call (it is called once per
    pass); nulls are never duplicates. `hash_keys` and the sizes are for tests.
    """
    candidates = _candidate_hashes(read_keys, num_rows, hash_keys, hashes_per_pass, hashes_per_sort)
    if len(candidates) == 0:
        return pa.table({"key": pa.array([], pa.string()), "copies": pa.array([], pa.int64())})
    return _confirmed(read_keys, candidates, hash_keys)
