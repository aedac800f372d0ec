"""Fetching Linux wheels for another platform with pip, cached under build/, installed without Docker."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = REPO_ROOT / "build"
WHEEL_CACHE = BUILD_DIR / "wheels"

# Lambda's Python 3.12+ runtimes run on Amazon Linux 2023 (glibc 2.34), so manylinux_2_28 wheels load.
# pyarrow 26 publishes no manylinux2014 wheel, which is why the older tag is not enough.
PLATFORM_TAGS = {"arm64": "manylinux_2_28_aarch64", "x86_64": "manylinux_2_28_x86_64"}


@dataclass(frozen=True, kw_only=True)
class Target:
    """Where a layer will run: Lambda architecture and CPython version ("3.13")."""

    architecture: str
    python_version: str

    @property
    def platform(self) -> str:
        return PLATFORM_TAGS[self.architecture]

    @property
    def tag(self) -> str:
        return f"cp{self.python_version.replace('.', '')}-{self.platform}"


def _pip(*arguments: str) -> None:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet", *arguments]
    subprocess.run(command, check=True)  # noqa: S603 - fixed pip command, our own arguments


def install_for(target: Target, requirements: list[str], destination: Path, *, no_deps: bool = True) -> None:
    """Download (once, into build/wheels) and install binary wheels for `target` into `destination`."""
    cache = WHEEL_CACHE / target.tag
    cache.mkdir(parents=True, exist_ok=True)
    platform_args = [
        "--only-binary=:all:",
        "--platform",
        target.platform,
        "--python-version",
        target.python_version,
        "--implementation",
        "cp",
    ]
    deps_args = ["--no-deps"] if no_deps else []
    # Download once per requirement set, so every later `make test` builds from the cache, offline.
    marker = cache / f".downloaded-{hashlib.sha256(' '.join([*deps_args, *requirements]).encode()).hexdigest()[:16]}"
    if not marker.exists():
        _pip("download", *platform_args, *deps_args, "--dest", str(cache), *requirements)
        marker.touch()
    if destination.exists():
        shutil.rmtree(destination)
    _pip(
        "install",
        *platform_args,
        *deps_args,
        "--no-index",
        "--find-links",
        str(cache),
        "--no-compile",
        "--target",
        str(destination),
        *requirements,
    )
    _drop_console_scripts(destination)


def _drop_console_scripts(destination: Path) -> None:
    """Remove the console scripts pip wrote (`bin/`) and their lines in the packages' RECORD files.

    Lambda never runs them, and pip writes the building interpreter's path into their first line
    (and their hashes into RECORD): without them a layer is the same bytes from any checkout, so a
    deploy from another folder publishes no new layer version, and no new function version with it.
    """
    scripts = destination / "bin"
    if not scripts.is_dir():
        return
    shutil.rmtree(scripts)
    for record in destination.glob("*.dist-info/RECORD"):
        lines = record.read_text().splitlines(keepends=True)
        kept = [line for line in lines if not line.startswith("../../bin/")]
        if len(kept) != len(lines):
            record.write_text("".join(kept))


def tree_size(path: Path) -> int:
    """Bytes of all regular files under `path` (what Lambda counts as unzipped size)."""
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file() and not item.is_symlink())
