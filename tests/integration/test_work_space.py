"""A work directory too small for the file: a real tiny file system (tmpfs) and a real ENOSPC."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pymysql
import pytest

from functions.ingest.fingerprint_spills import spill_bytes
from functions.ingest.load_files import write_load_file
from functions.ingest.s3_source import SignalObjectStore
from functions.ingest.service import SyncService
from functions.ingest.sync_values import SyncOptions
from functions.ingest.work_space import LEFTOVER_AGE_SECONDS, load_file_scratch_bytes
from functions.shared.contract import object_key_for
from functions.shared.db import connect
from functions.shared.errors import NoSpace
from functions.shared.settings import DatabaseSettings, load_ingest_settings
from tests.factories import day_two, snowflake_table, write_pyarrow
from tests.integration.conftest import (
    BUCKET,
    PREFIX,
    ingest_env,
    invoke_in_a_process,
    query,
    service_on,
    upload_to,
    wait_for,
)

DAY = dt.date(2026, 1, 30)
WORK_DIR_BYTES = 1 << 20


@pytest.fixture
def tiny_work_dir(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs: a work directory that really fills up."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={WORK_DIR_BYTES}", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        if os.geteuid() == 0:  # CI runs as root: there a failed mount is a fault, never a skip
            pytest.fail(f"cannot mount a tmpfs as root: {mounted.stderr.strip()}")
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def test_a_file_larger_than_the_work_dir_fails_for_good_before_downloading(
    tiny_work_dir: Path,
    migrated_settings: DatabaseSettings,
    s3_client: Any,
    upload: Callable[..., str],
    db: pymysql.Connection[Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a 2 MiB object and a work directory of 1 MiB
    upload(DAY, raw=b"PAR1" + bytes(2 << 20))
    settings = load_ingest_settings(ingest_env(WORK_DIR=str(tiny_work_dir)))
    service = SyncService(
        settings,
        lambda: connect(migrated_settings),
        SignalObjectStore(s3_client, BUCKET, reserve_bytes=load_file_scratch_bytes(settings)),
        sleep=lambda _seconds: None,
    )

    # When the date syncs
    with caplog.at_level("WARNING", logger="upsell_signals"), pytest.raises(NoSpace) as raised:
        service.sync(DAY, None, SyncOptions(invocation_id=f"test-{uuid.uuid4()}"))

    # Then it fails for good at once, saying where, how much and what to raise; nothing was written
    message = str(raised.value)
    assert f"not enough space in {tiny_work_dir} " in message and "needs" in message
    assert "ephemeralStorageMb" in message
    assert not [record for record in caplog.records if "transient error, retry" in record.getMessage()]
    assert list(tiny_work_dir.iterdir()) == []
    recorded = query(db, "SELECT status, error_message FROM upsell_signal_sync_metadata")
    assert recorded == [{"status": "failed", "error_message": message}]


def test_a_day_two_whose_compare_would_not_fit_beside_its_file_fails_for_good_before_comparing(
    tiny_work_dir: Path,
    tmp_path: Path,
    migrated_settings: DatabaseSettings,
    s3_client: Any,
    upload: Callable[..., str],
    db: pymysql.Connection[Any],
) -> None:
    # Given 9,500 rows published, and their day two, whose file and load files fit the 1 MiB work
    # directory but not with the compare's spills (a fingerprint and number for each file and table row)
    def service_in(work_dir: Path) -> SyncService:
        settings = load_ingest_settings(ingest_env(WORK_DIR=str(work_dir), STAGING_CHUNK_ROWS="50"))
        store = SignalObjectStore(s3_client, BUCKET, reserve_bytes=load_file_scratch_bytes(settings))
        return SyncService(settings, lambda: connect(migrated_settings, local_infile=True), store, sleep=lambda _seconds: None)

    day_one = snowflake_table(9_500, seed=5)
    upload(DAY - dt.timedelta(days=1), day_one)
    assert service_in(tmp_path).sync(DAY - dt.timedelta(days=1), None, SyncOptions(invocation_id="one")).status == "completed"
    upload(DAY, day_two(day_one, seed=6))
    file_bytes = s3_client.head_object(Bucket=BUCKET, Key=object_key_for(PREFIX, DAY))["ContentLength"]
    scratch = load_file_scratch_bytes(load_ingest_settings(ingest_env(STAGING_CHUNK_ROWS="50")))
    spills = spill_bytes(9_500, 9_500, with_unmatched=False)
    assert file_bytes + scratch < WORK_DIR_BYTES < file_bytes + spills

    # When day two syncs in it
    with pytest.raises(NoSpace) as raised:
        service_in(tiny_work_dir).sync(DAY, None, SyncOptions(invocation_id="two"))

    # Then it fails for good before the compare writes, saying what did not fit; nothing is left there
    assert f"not enough space in {tiny_work_dir} for the compare's spills and the load files" in str(raised.value)
    assert list(tiny_work_dir.iterdir()) == []
    assert query(db, "SELECT status FROM upsell_signal_sync_metadata WHERE sync_date = %s", (DAY,)) == [{"status": "failed"}]


def test_enospc_in_the_middle_of_a_download_is_no_space_and_leaves_no_partial_file(
    tiny_work_dir: Path, s3_client: Any, upload: Callable[..., str]
) -> None:
    # Given a 2 MiB object, and a free-space reading that wrongly says there is room
    key = upload(DAY, raw=b"PAR1" + bytes(2 << 20))
    store = SignalObjectStore(s3_client, BUCKET, free=lambda _directory: 1 << 40)
    info = store.describe(key)

    # When it is downloaded into the 1 MiB work directory, the disk fills up mid-way
    with pytest.raises(NoSpace, match=f"not enough space in {tiny_work_dir} for the download of s3://"):
        store.download(info, tiny_work_dir / "data.parquet")

    # Then the error is NoSpace (permanent), and the partial file is gone
    assert list(tiny_work_dir.iterdir()) == []


def test_enospc_while_writing_a_load_file_is_no_space() -> None:
    # Given rows to stage, When their load file is written where every write gets ENOSPC
    rows = snowflake_table(100, seed=3).select([0, 1]).rename_columns(["a", "b"])
    assert isinstance(rows, pa.Table)
    # Then the error is NoSpace, naming the file
    with pytest.raises(NoSpace, match=r"for the load file full: \d+ bytes free, ran out of space; give the function"):
        write_load_file(rows, Path("/dev/full"))


def test_files_left_by_a_killed_sync_are_removed_by_the_next_and_fresh_ones_kept(
    db: pymysql.Connection[Any], upload: Callable[..., str], run_sync: Callable[..., Any], tmp_path: Path
) -> None:
    # Given the work directory holding what a killed sync left an hour ago (a download, a partial
    # download, a load file), a fresh file of another run, and a file that is not a sync's
    old = [
        tmp_path / name
        for name in (
            "upsell-signals-2026-01-29-abc.parquet",
            "upsell-signals-2026-01-29-abc.parquet.x1.part",
            "upsell-signals-2026-01-29-abc.load0.tsv",
        )
    ]
    fresh = tmp_path / "upsell-signals-2026-01-29-def.parquet"
    foreign = tmp_path / "notes.txt"
    an_hour_ago = time.time() - 3600
    for path in [*old, fresh, foreign]:
        path.write_bytes(b"x" * 1000)
    for path in [*old, foreign]:
        os.utime(path, (an_hour_ago, an_hour_ago))
    upload(dt.date(2026, 1, 30), snowflake_table(200, seed=501))

    # When a sync runs in that directory
    result = run_sync(dt.date(2026, 1, 30))

    # Then the killed sync's files are gone; the fresh one and the foreign one stay
    assert result.status == "completed"
    assert [path.exists() for path in old] == [False, False, False]
    assert fresh.exists() and foreign.exists()


def test_the_download_of_a_sync_killed_by_sigkill_is_removed_by_the_next_run_once_it_is_old(
    migrated_settings: DatabaseSettings, db: pymysql.Connection[Any], moto_endpoint: str, tmp_path: Path
) -> None:
    # Given a sync in its own process, killed (SIGKILL, as Lambda kills at its timeout) once its
    # download is in the execution environment's work directory
    work_dir = tmp_path / "tmp-of-one-environment"
    work_dir.mkdir()
    upload_to(moto_endpoint, DAY, write_pyarrow(snowflake_table(100_000, seed=502), tmp_path / "killed-day.parquet"))
    worker = invoke_in_a_process(moto_endpoint, migrated_settings, work_dir, DAY)
    wait_for(lambda: any(work_dir.glob("upsell-signals-2026-01-30-*.parquet")), 60, "the download")
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    (left,) = work_dir.glob("upsell-signals-2026-01-30-*")
    assert left.suffix == ".parquet", "the kill landed after the download was complete"
    # ... and left there longer than any invocation runs: the test cannot wait LEFTOVER_AGE_SECONDS
    # (900 s), so it sets the file's modification time back by as much, as the clock would have
    old = time.time() - LEFTOVER_AGE_SECONDS - 60
    os.utime(left, (old, old))

    # When the environment's next invocation syncs another date
    next_day = DAY + dt.timedelta(days=1)
    upload_to(moto_endpoint, next_day, write_pyarrow(snowflake_table(200, seed=503), tmp_path / "next-day.parquet"))
    result = service_on(moto_endpoint, migrated_settings, work_dir).sync(next_day, None, SyncOptions(invocation_id="next"))

    # Then the killed run's download is gone, and the next run left nothing of its own behind
    assert result.status == "completed"
    assert not left.exists()
    assert list(work_dir.iterdir()) == []
