"""Room in the work directory (in Lambda: ephemeral storage at /tmp) for what a sync writes.

A sync writes the downloaded object and, with LOAD DATA, two chunks' load files next to it.
Too little room is a permanent fault of the deployment, not of the sync: retrying only
downloads the file again into the same full disk. So it is checked before the download,
and ENOSPC met while writing anyway becomes the same NoSpace.
"""

from __future__ import annotations

import datetime as dt
import errno
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from functions.shared.errors import NoSpace
from functions.shared.settings import IngestSettings

# The setting that sizes the work directory in AWS (infra/config.py reads it).
STORAGE_SETTING = 'ephemeralStorageMb in the environment\'s "ingest" section of cdk.json'
# A load file's line measured about 320 bytes at 25,000 rows (docs/deploy.md); twice that
# leaves room for long strings. An underestimate still ends in NoSpace, only later.
LOAD_FILE_BYTES_PER_ROW = 640
LOAD_FILE_SLOTS = 2  # one chunk loads while the next one is written

FreeBytes = Callable[[Path], int]
# Every file a sync writes in the work directory starts so: the download, its partial
# download, the load files beside it, and a newer date's file read for the newest-wins step.
WORK_FILE_PREFIX = "upsell-signals-"
# No Lambda invocation runs longer (its largest timeout): a sync's file untouched this long is a dead run's.
LEFTOVER_AGE_SECONDS = 900


def download_path(work_dir: str | Path, sync_date: dt.date, etag: str) -> Path:
    """Where a sync downloads its date's object (the load files go beside it)."""
    return Path(work_dir) / f"{WORK_FILE_PREFIX}{sync_date}-{etag}.parquet"


def newer_file_path(work_dir: str | Path, newer_date: dt.date, etag: str) -> Path:
    """Where a publish downloads a newer completed date's object, to read which companies it carries."""
    return Path(work_dir) / f"{WORK_FILE_PREFIX}newer-{newer_date}-{etag}.parquet"


def free_bytes(directory: Path) -> int:
    """Bytes an unprivileged writer may still use in `directory`'s file system."""
    return shutil.disk_usage(directory).free


def load_file_scratch_bytes(settings: IngestSettings) -> int:
    """Room the load files take beside the downloaded object (none for the INSERT path)."""
    if settings.load_method != "local_infile":
        return 0
    return LOAD_FILE_SLOTS * settings.chunk_rows * LOAD_FILE_BYTES_PER_ROW


def _no_space(directory: Path, free: int, needed: int | None, what: str) -> NoSpace:
    wanted = f"needs {needed} bytes" if needed is not None else "ran out of space"
    return NoSpace(
        f"not enough space in {directory} for {what}: {free} bytes free, {wanted}; "
        f"give the function more ephemeral storage ({STORAGE_SETTING})"
    )


def ensure_room(directory: Path, needed: int, what: str, *, free: FreeBytes = free_bytes) -> None:
    """NoSpace unless `directory` has `needed` bytes free for `what`."""
    available = free(directory)
    if available < needed:
        raise _no_space(directory, available, needed, what)


@contextmanager
def no_space_is_permanent(directory: Path, what: str) -> Iterator[None]:
    """Turn ENOSPC (or EDQUOT) met while writing `what` into `directory` into NoSpace."""
    try:
        yield
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise _no_space(directory, free_bytes(directory), None, what) from error


def remove_leftovers(directory: Path, older_than_seconds: float) -> list[Path]:
    """Delete what killed syncs left in `directory` (untouched for `older_than_seconds`); the paths removed.

    Lambda keeps /tmp across invocations of a container and kills at the timeout without
    cleaning up; left alone, those files would fill the ephemeral storage. A container
    runs one invocation at a time, and the age keeps a concurrent local run's files safe.
    """
    cutoff = time.time() - older_than_seconds
    removed = []
    for path in directory.glob(f"{WORK_FILE_PREFIX}*"):
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed.append(path)
        except FileNotFoundError:
            continue  # another run removed it first
    return removed
