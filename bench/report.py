"""Tables, ratios and target checks from the collected figures (plain text and markdown)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.scenarios import CONTENDER_LABELS, CONTENDERS, SCENARIOS, SYNC_LOAD_METHODS

Results = dict[str, Any]  # {"contenders": {name: {"error": str | None, "scenarios": {key: figures}}}}
DASH = "—"
RSS_LIMIT_MB = 300.0  # issue 16.2, at MEMORY_REFERENCE_ROWS
RSS_GROWTH_LIMIT = 1.5  # RSS(1M) ÷ RSS(100k)
RSS_LARGE_GROWTH_LIMIT = 1.2  # RSS(10M) ÷ RSS(1M), issue 16.2
MEMORY_REFERENCE_ROWS = 1_000_000
SMALL_ROWS = 100_000
LARGE_ROWS = 10_000_000
INSERT_SPEEDUP_GOAL = 3.0  # issue 16.1: STAGING_LOAD_METHOD=insert against the original design


def _others(sync: str) -> list[str]:
    """The columns of one load method's table: the floor, that sync, and the baselines."""
    return [contender for contender in CONTENDERS if contender not in SYNC_LOAD_METHODS or contender == sync]


def sync_contenders(size_results: Results) -> list[str]:
    """The sync contenders (one per load method) that ran at this size."""
    return [contender for contender in SYNC_LOAD_METHODS if contender in size_results["contenders"]]


def _figures(size_results: Results, contender: str, scenario: str) -> dict[str, Any] | None:
    entry = size_results["contenders"].get(contender) or {}
    figures = (entry.get("scenarios") or {}).get(scenario)
    return figures if figures and "seconds" in figures else None


def _seconds(size_results: Results, contender: str, scenario: str) -> float | None:
    figures = _figures(size_results, contender, scenario)
    return float(figures["seconds"]) if figures else None


def _number(value: float | None, digits: int = 1) -> str:
    return DASH if value is None else f"{value:,.{digits}f}"


def _ratio(value: float | None) -> str:
    return DASH if value is None else f"{value:.2f}x"


def _divide(top: float | None, bottom: float | None) -> float | None:
    return None if top is None or bottom is None or bottom == 0 else top / bottom


def _cells(size_results: Results, contender: str, scenario: str) -> list[str]:
    figures = _figures(size_results, contender, scenario)
    if figures is None:
        entry = size_results["contenders"].get(contender) or {}
        failed = (entry.get("scenarios") or {}).get(scenario, {}).get("error") or entry.get("error")
        return ["n/a" if failed else DASH] * 3
    seconds = float(figures["seconds"])
    rows = int(figures.get("rows") or 0)
    return [_number(seconds), f"{rows / seconds:,.0f}" if seconds else DASH, _number(figures.get("peak_rss_mb"), 0)]


def main_table(size_results: Results, sync_contender: str = "sync") -> tuple[list[str], list[list[str]]]:
    """Seconds, rows/s and peak RSS per contender, with ratios of one load method's sync to the original and the floor."""
    contenders = _others(sync_contender)
    header = ["scenario"]
    for contender in contenders:
        label = CONTENDER_LABELS[contender]
        header += [f"{label} s", f"{label} rows/s", f"{label} MB"]
    header += ["original ÷ sync (x faster)", "sync ÷ floor", "original ÷ awswrangler"]
    floor = _seconds(size_results, "floor", "first_load")
    rows = []
    for scenario in SCENARIOS:
        if all(_figures(size_results, contender, scenario.key) is None for contender in contenders):
            continue
        line = [scenario.label]
        for contender in contenders:
            line += _cells(size_results, contender, scenario.key)
        # MISSING_ROWS=delete has no counterpart in the original design: compare with its day two (a).
        baseline_key = "day_two_a" if scenario.key == "day_two_a_delete" else scenario.key
        original = _seconds(size_results, "original", baseline_key)
        sync = _seconds(size_results, sync_contender, scenario.key)
        line += [
            _ratio(_divide(original, sync)),
            _ratio(_divide(sync, floor)),
            _ratio(_divide(original, _seconds(size_results, "awswrangler", scenario.key))),
        ]
        rows.append(line)
    return header, rows


def writes_table(size_results: Results, sync_contender: str = "sync") -> tuple[list[str], list[list[str]]]:
    """What each scenario wrote: the sync's exact counts, rows whose updated_at moved, ids used."""
    header = [
        "scenario",
        "sync inserted / updated / unchanged / deleted",
        "rows touched: sync / original / awswrangler",
        "next id: sync / original / awswrangler",
    ]
    rows = []
    for scenario in SCENARIOS:
        sync = _figures(size_results, sync_contender, scenario.key)
        if sync is None and _figures(size_results, "original", scenario.key) is None:
            continue
        counts = (sync or {}).get("counts") or {}
        exact = (
            " / ".join(f"{counts.get(name) or 0:,}" for name in ("inserted", "updated", "unchanged", "deleted")) if sync else DASH
        )
        touched, next_ids = [], []
        for contender in (sync_contender, "original", "awswrangler"):
            figures = _figures(size_results, contender, scenario.key)
            touched.append(f"{figures['rows_touched']:,}" if figures and "rows_touched" in figures else DASH)
            next_ids.append(f"{figures['next_auto_increment']:,}" if figures and "next_auto_increment" in figures else DASH)
        rows.append([scenario.label, exact, " / ".join(touched), " / ".join(next_ids)])
    return header, rows


def steps_table(size_results: Results, sync_contender: str = "sync") -> tuple[list[str], list[list[str]]]:
    """Where one load method's sync spends its time, per scenario (seconds)."""
    sync = sync_contender
    present = [scenario for scenario in SCENARIOS if (_figures(size_results, sync, scenario.key) or {}).get("steps")]
    names: list[str] = []
    for scenario in present:
        for name in (_figures(size_results, sync, scenario.key) or {})["steps"]:
            if name not in names:
                names.append(name)
    header = ["sync step (s)", *[scenario.key for scenario in present]]
    rows = []
    for name in names:
        rows.append([name, *[_number(((_figures(size_results, sync, s.key) or {})["steps"]).get(name), 2) for s in present]])
    rows.append(["total", *[_number(_seconds(size_results, sync, s.key), 2) for s in present]])
    return header, rows


def render_text(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            cell.ljust(width) if index == 0 else cell.rjust(width)
            for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(header), "  ".join("-" * width for width in widths), *(line(row) for row in rows)])


def render_markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass(frozen=True)
class TargetCheck:
    target: str
    figure: str
    passed: bool | None  # None: not measurable in this run

    @property
    def verdict(self) -> str:
        return "n/a" if self.passed is None else ("PASS" if self.passed else "MISS")


def _peak_rss(size_results: Results, contender: str) -> float | None:
    """The largest peak RSS of one contender's scenarios at one size (measured from outside the worker)."""
    peaks = [
        float(f["peak_rss_mb"]) for s in SCENARIOS if (f := _figures(size_results, contender, s.key)) and f.get("peak_rss_mb")
    ]
    return max(peaks) if peaks else None


def _memory_checks(results_by_size: dict[int, Results]) -> list[TargetCheck]:
    """Peak RSS at 1M rows and its growth to 10M (and from 100k), per load method."""
    checks = []
    for sync, method in SYNC_LOAD_METHODS.items():
        at = {rows: _peak_rss(results, sync) for rows, results in results_by_size.items()}
        if not any(at.values()):
            continue
        peak = at.get(MEMORY_REFERENCE_ROWS)
        checks.append(
            TargetCheck(
                f"{method}: peak RSS at 1M rows ≤ {RSS_LIMIT_MB:.0f} MB (the entry point, measured from outside)",
                f"{_number(peak, 0)} MB (largest of the scenarios)",
                None if peak is None else peak <= RSS_LIMIT_MB,
            )
        )
        for rows, limit in ((LARGE_ROWS, RSS_LARGE_GROWTH_LIMIT), (SMALL_ROWS, RSS_GROWTH_LIMIT)):
            larger, smaller = (at.get(rows), peak) if rows > MEMORY_REFERENCE_ROWS else (peak, at.get(rows))
            growth = _divide(larger, smaller)
            big, small = max(rows, MEMORY_REFERENCE_ROWS), min(rows, MEMORY_REFERENCE_ROWS)
            checks.append(
                TargetCheck(
                    f"{method}: RSS({_size(big)}) ÷ RSS({_size(small)}) ≤ {limit}",
                    DASH if growth is None else f"{_number(larger, 0)} MB ÷ {_number(smaller, 0)} MB = {_ratio(growth)}",
                    None if growth is None else growth <= limit,
                )
            )
    return checks


def _size(rows: int) -> str:
    return f"{rows // 1_000_000}M" if rows >= 1_000_000 else f"{rows // 1_000}k"


def scaling_table(results_by_size: dict[int, Results]) -> tuple[list[str], list[list[str]]] | None:
    """How each contender's time and memory grow from 1M rows to the largest size (ideal: time x rows, memory 1x)."""
    large = max(results_by_size)
    if large <= MEMORY_REFERENCE_ROWS or MEMORY_REFERENCE_ROWS not in results_by_size:
        return None
    small_results, large_results = results_by_size[MEMORY_REFERENCE_ROWS], results_by_size[large]
    factor = large / MEMORY_REFERENCE_ROWS
    header = [
        "contender",
        "scenario",
        f"{_size(MEMORY_REFERENCE_ROWS)} s",
        f"{_size(large)} s",
        f"{_size(large)} rows/s",
        f"time ÷ (ideal {factor:.0f}x)",
        f"{_size(MEMORY_REFERENCE_ROWS)} MB",
        f"{_size(large)} MB",
        "memory (ideal 1x)",
        f"pages read from disk {_size(MEMORY_REFERENCE_ROWS)} / {_size(large)}",
        f"table + indexes after, {_size(large)} (MB)",
    ]
    rows = []
    for contender in CONTENDERS:
        for scenario in SCENARIOS:
            small, big = _figures(small_results, contender, scenario.key), _figures(large_results, contender, scenario.key)
            if big is None:
                continue
            seconds_small = float(small["seconds"]) if small else None
            seconds_big = float(big["seconds"])
            rss_small = float(small["peak_rss_mb"]) if small and small.get("peak_rss_mb") else None
            rss_big = float(big["peak_rss_mb"]) if big.get("peak_rss_mb") else None
            rows.append(
                [
                    CONTENDER_LABELS[contender],
                    scenario.label,
                    _number(seconds_small),
                    _number(seconds_big),
                    f"{int(big.get('rows') or 0) / seconds_big:,.0f}" if seconds_big else DASH,
                    _ratio(_divide(seconds_big, seconds_small)),
                    _number(rss_small, 0),
                    _number(rss_big, 0),
                    _ratio(_divide(rss_big, rss_small)),
                    f"{_pool_reads(small)} / {_pool_reads(big)}",
                    f"{big.get('table_data_mb', DASH)} + {big.get('table_indexes_mb', DASH)}",
                ]
            )
    return header, rows


def _pool_reads(figures: dict[str, Any] | None) -> str:
    reads = ((figures or {}).get("server_io") or {}).get("Innodb_buffer_pool_reads")
    return DASH if reads is None else f"{int(reads):,}"


# Each scenario's time as a share of the LOAD DATA floor's first load in the same run: the
# floor follows the machine, where the original design's time follows the disk's fsync latency.
FLOOR_SHARE_TARGETS = (
    ("sync", "first_load", "first load", 1.05),
    ("sync", "resync", "identical forced re-sync", 0.25),
    ("sync", "day_two_a", "day two (a)", 0.40),
    ("sync", "day_two_a_delete", "day two (a), MISSING_ROWS=delete", 0.50),
    ("sync", "day_two_b", "day two (b)", 1.50),
    ("sync-insert", "day_two_a", "day two (a), INSERT path", 0.50),
    ("sync-insert", "first_load", "first load, INSERT path", 1.25),
)


def _floor_share_checks(figures: Results) -> list[TargetCheck]:
    floor = _seconds(figures, "floor", "first_load")
    checks = []
    for contender, scenario, label, target in FLOOR_SHARE_TARGETS:
        seconds = _seconds(figures, contender, scenario)
        share = _divide(seconds, floor)
        checks.append(
            TargetCheck(
                f"{label} ≤ {target:.2f}x the floor's first load",
                f"{_number(seconds)} s vs floor {_number(floor)} s = {DASH if share is None else f'{share:.2f}x'}",
                None if share is None else share <= target,
            )
        )
    return checks


def check_targets(results_by_size: dict[int, Results]) -> tuple[int, list[TargetCheck]]:
    """The issue's targets: speed at 1,000,000 rows (else the largest size run), memory per load method."""
    size = MEMORY_REFERENCE_ROWS if MEMORY_REFERENCE_ROWS in results_by_size else max(results_by_size)
    figures = results_by_size[size]
    checks: list[TargetCheck] = []

    sync_first, floor_first = _seconds(figures, "sync", "first_load"), _seconds(figures, "floor", "first_load")
    ratio = _divide(sync_first, floor_first)
    checks.append(
        TargetCheck(
            "first load within 1.25x of the floor",
            f"{_number(sync_first)} s vs floor {_number(floor_first)} s = {_ratio(ratio)}",
            None if ratio is None else ratio <= 1.25,
        )
    )

    resync = _figures(figures, "sync", "resync")
    speedup = _divide(_seconds(figures, "original", "resync"), _seconds(figures, "sync", "resync"))
    wrote = None
    if resync:
        counts = resync.get("counts") or {}
        wrote = sum(int(counts.get(name) or 0) for name in ("inserted", "updated", "deleted")) + int(
            resync.get("rows_touched") or 0
        )
    checks.append(
        TargetCheck(
            "identical re-sync ≥ 5x faster than the original, zero rows written",
            f"{_ratio(speedup)} faster; rows written {DASH if wrote is None else f'{wrote:,}'}",
            None if speedup is None or wrote is None else (speedup >= 5 and wrote == 0),
        )
    )

    for key, label in (("day_two_a", "(a)"), ("day_two_b", "(b)"), ("day_two_a_delete", "(a) with MISSING_ROWS=delete")):
        baseline = "day_two_a" if key == "day_two_a_delete" else key
        speedup = _divide(_seconds(figures, "original", baseline), _seconds(figures, "sync", key))
        sync = _figures(figures, "sync", key)
        written = ""
        if sync:
            counts = sync.get("counts") or {}
            written = (
                f"; wrote {int(counts.get('inserted') or 0):,} new + {int(counts.get('updated') or 0):,} changed"
                f" + {int(counts.get('deleted') or 0):,} deleted, touched {int(sync.get('rows_touched') or 0):,}"
            )
        checks.append(
            TargetCheck(
                f"day two {label} ≥ 4x faster than the original",
                f"{_ratio(speedup)} faster{written}",
                None if speedup is None else speedup >= 4,
            )
        )

    checks += _floor_share_checks(figures)
    checks += _memory_checks(results_by_size)
    checked = [
        (f"{contender} {key} at {rows:,}", bool(f.get("table_equals_file")))
        for rows, results in results_by_size.items()
        for contender in CONTENDERS
        for key in (s.key for s in SCENARIOS)
        if (f := _figures(results, contender, key)) is not None and contender != "awswrangler"
    ]
    unequal = [name for name, equal in checked if not equal]
    checks.append(
        TargetCheck(
            "every scenario at every size leaves the table equal to the file (rows and row checksums; not awswrangler)",
            f"{len(checked) - len(unequal)} of {len(checked)} equal" + (f"; unequal: {', '.join(unequal)}" if unequal else ""),
            None if not checked else not unequal,
        )
    )
    for key, label in (("first_load", "first load"), ("resync", "identical re-sync"), ("day_two_a", "day two (a)")):
        speedup = _divide(_seconds(figures, "original", key), _seconds(figures, "sync-insert", key))
        checks.append(
            TargetCheck(
                f"STAGING_LOAD_METHOD=insert: {label} ≥ {INSERT_SPEEDUP_GOAL:.0f}x faster than the original",
                f"{_ratio(speedup)} faster ({_number(_seconds(figures, 'sync-insert', key))} s vs "
                f"{_number(_seconds(figures, 'original', key))} s)",
                None if speedup is None else speedup >= INSERT_SPEEDUP_GOAL,
            )
        )
    return size, checks
