"""Build both layers for one Lambda architecture under build/layers/<arch>/ and check the size limit.

python -m layers.build --arch arm64
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
from pathlib import Path

from layers.deps.build import build_deps_layer, requirements
from layers.pyarrow.build import build_pyarrow_layer
from layers.size_check import check_size
from layers.wheels import BUILD_DIR, REPO_ROOT, Target

# The functions' runtime (infra/constructs/code.py maps it to Lambda's). 3.13, not 3.14: the pinned
# aws-cdk-lib and pyarrow 26.0.1 both offer 3.14, but no 3.14 interpreter can be installed here
# (only package registries are reachable), so the layer import test could not run on it.
LAMBDA_PYTHON_VERSION = "3.13"
LAYER_NAMES = ("pyarrow", "deps")


def layer_root(architecture: str) -> Path:
    """Where the layers for one architecture are built; the CDK app reads them from here."""
    return BUILD_DIR / "layers" / architecture


def build_layers(
    architecture: str, *, python_version: str = LAMBDA_PYTHON_VERSION, root: Path | None = None
) -> dict[str, object]:
    """Build pyarrow and deps layers, check function + layers <= 250 MB, write and return a manifest."""
    target = Target(architecture=architecture, python_version=python_version)
    root = root or layer_root(architecture)
    pyarrow = build_pyarrow_layer(target, root / "pyarrow")
    build_deps_layer(target, root / "deps")
    report = check_size({"pyarrow": root / "pyarrow", "deps": root / "deps"})
    manifest: dict[str, object] = {
        "architecture": architecture,
        "python_version": python_version,
        # A changed pin (a new boto3, a removed package), or a change to how layers are built, makes them stale.
        "deps_requirements": requirements(),
        "build_code": build_code_fingerprint(),
        "pyarrow_wheel_unzipped_bytes": pyarrow.full_bytes,
        "pyarrow_trimmed_bytes": pyarrow.trimmed_bytes,
        "pyarrow_stripped": pyarrow.stripped,
        "parts_bytes": report.parts,
        "total_bytes": report.total_bytes,
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"layers for {architecture} (Python {python_version}) in {root}:\n{report.describe()}")
    return manifest


def layers_are_current(root: Path, architecture: str, python_version: str = LAMBDA_PYTHON_VERSION) -> bool:
    """Both layer folders exist and the manifest says they were built for this architecture, Python, deps pins and build code."""
    manifest_path = root / "manifest.json"
    if not manifest_path.is_file() or not all((root / name / "python").is_dir() for name in LAYER_NAMES):
        return False
    manifest = json.loads(manifest_path.read_text())
    return bool(
        manifest.get("architecture") == architecture
        and manifest.get("python_version") == python_version
        and manifest.get("deps_requirements") == requirements()
        and manifest.get("build_code") == build_code_fingerprint()
    )


def build_code_fingerprint() -> str:
    """SHA-256 of the code that builds the layers (layers/**/*.py): a change to it rebuilds them."""
    digest = hashlib.sha256()
    for path in sorted((REPO_ROOT / "layers").rglob("*.py")):
        digest.update(path.relative_to(REPO_ROOT).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def ensure_layers(architecture: str, root: Path | None = None) -> Path:
    """The layers for `architecture`, built first when missing or built for another Python (as `make layer` does).

    The CDK app calls this, so `cdk synth`/`cdk deploy` work from a clean clone without `make layer`;
    built wheels come from build/wheels, so only the first build needs the package index.
    """
    root = root or layer_root(architecture)
    if not layers_are_current(root, architecture):
        print(f"layers for {architecture} missing or stale in {root}: building them (no Docker)", file=sys.stderr)
        build_layers(architecture, root=root)
    return root


def build_local_test_layers(python_version: str | None = None) -> Path:
    """The same trimmed layers for this machine's CPU and a Python (this one's by default), boto3 included as deployed.

    An aarch64 wheel cannot be imported by this machine's interpreter (x86_64 here), so the import
    test runs the identical build and trim on the wheels this machine can load.
    """
    architecture = "arm64" if platform.machine() in ("aarch64", "arm64") else "x86_64"
    python_version = python_version or f"{sys.version_info.major}.{sys.version_info.minor}"
    target = Target(architecture=architecture, python_version=python_version)
    root = BUILD_DIR / "layers" / f"local-test-{target.tag}"
    build_pyarrow_layer(target, root / "pyarrow")
    build_deps_layer(target, root / "deps")
    return root


def architecture_of(environment: str) -> str:
    """The architecture cdk.json gives an environment (arm64 when it names none)."""
    settings = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]["environments"]
    if environment not in settings:
        raise SystemExit(f"unknown environment {environment!r} in cdk.json; known: {', '.join(sorted(settings))}")
    return str(settings[environment].get("architecture", "arm64"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--arch", choices=("arm64", "x86_64"))
    choice.add_argument("--env", help="build for the architecture this cdk.json environment uses")
    arguments = parser.parse_args()
    build_layers(arguments.arch or (architecture_of(arguments.env) if arguments.env else "arm64"))


if __name__ == "__main__":
    main()
