"""Build the pyarrow layer from the manylinux_2_28 wheel and trim what the functions never load.

Measured on pyarrow 26.0.1 (aarch64): the wheel unpacks to ~150 MB; Flight, Arrow's own S3
filesystem (we read S3 with boto3), tests, headers and Cython sources and the duplicate `.so`
copies (a wheel cannot hold symlinks, so libX.so, libX.so.2600 and libX.so.2600.1.0 are three
full copies) are ~45 MB of it; stripping symbols takes off most of the rest. numpy is optional
for pyarrow and the functions never convert to numpy or pandas, so it is not shipped.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from layers.wheels import Target, install_for, tree_size

PYARROW_REQUIREMENT = "pyarrow==26.0.1"

# Removed whole: never imported by the functions (checked by the import test on the trimmed tree).
REMOVED_DIRECTORIES = ("tests", "include", "src", "includes")
REMOVED_PATTERNS = (
    r"^libarrow_flight\.so.*",  # Arrow Flight RPC: we do not serve or call Flight
    r"^libarrow_python_flight\.so.*",
    r"^_flight\..*\.so$",
    r"^flight\.py$",
    r"^libarrow_s3\.so.*",  # Arrow's S3 filesystem (bundled AWS SDK): the functions download with boto3
    r"^_s3fs\..*\.so$",
    r"^_pyarrow_cpp_tests\..*\.so$",
    r".*\.(pxd|pyx|pxi|h|hpp|cc|cpp)$",  # Cython and C++ sources, needed only to build against pyarrow
)
# libX.so.2600 is the SONAME every extension module links against; libX.so (for linkers) and
# libX.so.2600.1.0 (the real name) are byte-identical copies in the wheel.
SONAME = re.compile(r"^(lib[\w\-]+)\.so\.(\d+)$")
DUPLICATE = re.compile(r"^(lib[\w\-]+)\.so(\.\d+\.\d+\.\d+)?$")
NEEDED = re.compile(r"\(NEEDED\)\s+Shared library: \[(.+)\]")


@dataclass(frozen=True, kw_only=True)
class LayerBuild:
    """A built layer tree and what it weighs."""

    path: Path
    full_bytes: int
    trimmed_bytes: int
    final_bytes: int
    stripped: bool


def _remove_unused(package: Path) -> None:
    for name in REMOVED_DIRECTORIES:
        shutil.rmtree(package / name, ignore_errors=True)
    patterns = [re.compile(pattern) for pattern in REMOVED_PATTERNS]
    for item in list(package.rglob("*")):
        if item.is_file() and any(pattern.match(item.name) for pattern in patterns):
            item.unlink()
    sonames = {match[1] for item in package.iterdir() if (match := SONAME.match(item.name))}
    for item in list(package.iterdir()):
        match = DUPLICATE.match(item.name)
        if match and match[1] in sonames:
            item.unlink()


def strip_tool(architecture: str) -> list[str] | None:
    """A strip that understands the target's ELF; llvm-strip handles every architecture."""
    candidates = [["llvm-strip", "--strip-unneeded"]]
    if architecture == "arm64":
        candidates.append(["aarch64-linux-gnu-strip", "--strip-unneeded"])
    else:
        candidates.append(["strip", "--strip-unneeded"])
    for candidate in candidates:
        if shutil.which(candidate[0]):
            return candidate
    return None


def _strip(package: Path, architecture: str) -> bool:
    tool = strip_tool(architecture)
    if tool is None:
        print(f"no strip tool for {architecture} (install llvm); layer left unstripped")
        return False
    libraries = sorted(str(item) for item in package.rglob("*.so*") if item.is_file())
    subprocess.run([*tool, *libraries], check=True)  # noqa: S603 - our own tool and files
    return True


def missing_libraries(package: Path) -> dict[str, list[str]]:
    """Arrow/Parquet libraries some remaining .so needs but the trim removed (must be empty)."""
    readelf = shutil.which("readelf") or shutil.which("llvm-readelf")
    if readelf is None:
        raise RuntimeError("readelf (binutils) or llvm-readelf is needed to check the trimmed layer's links")
    present = {item.name for item in package.iterdir()}
    missing: dict[str, list[str]] = {}
    for library in sorted(package.rglob("*.so*")):
        output = subprocess.run([readelf, "-d", str(library)], check=True, capture_output=True, text=True).stdout  # noqa: S603
        needed = [name for name in NEEDED.findall(output) if name.startswith(("libarrow", "libparquet"))]
        absent = [name for name in needed if name not in present]
        if absent:
            missing[library.name] = absent
    return missing


def build_pyarrow_layer(target: Target, layer_dir: Path, *, strip: bool = True) -> LayerBuild:
    """Install pyarrow for `target` into layer_dir/python and trim it; raise if a needed .so is gone."""
    site = layer_dir / "python"
    install_for(target, [PYARROW_REQUIREMENT], site)
    package = site / "pyarrow"
    full_bytes = tree_size(site)
    _remove_unused(package)
    trimmed_bytes = tree_size(site)
    stripped = _strip(package, target.architecture) if strip else False
    missing = missing_libraries(package)
    if missing:
        raise RuntimeError(f"trim removed libraries that are still linked: {missing}")
    return LayerBuild(
        path=layer_dir, full_bytes=full_bytes, trimmed_bytes=trimmed_bytes, final_bytes=tree_size(site), stripped=stripped
    )
