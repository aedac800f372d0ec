"""Build the dependencies layer: Powertools, PyMySQL, boto3/botocore, and the RDS CA bundle at /opt/certs."""

from __future__ import annotations

import shutil
from pathlib import Path

from layers.wheels import Target, install_for, tree_size

HERE = Path(__file__).resolve().parent
REQUIREMENTS_FILE = HERE / "requirements.txt"
CA_BUNDLE = HERE / "certs" / "rds-ca-bundle.pem"
# Layers are unpacked under /opt: this is the path the functions get as DB_TLS_CA_FILE.
CA_BUNDLE_IN_LAMBDA = "/opt/certs/rds-ca-bundle.pem"


def requirements() -> list[str]:
    """The pinned lines of layers/deps/requirements.txt."""
    lines = (line.split("#", 1)[0].strip() for line in REQUIREMENTS_FILE.read_text().splitlines())
    return [line for line in lines if line]


def build_deps_layer(target: Target, layer_dir: Path) -> int:
    """Install the pinned dependencies for `target` into layer_dir/python and add the CA bundle; bytes."""
    install_for(target, requirements(), layer_dir / "python")
    certs = layer_dir / "certs"
    certs.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(CA_BUNDLE, certs / CA_BUNDLE.name)
    return tree_size(layer_dir)
