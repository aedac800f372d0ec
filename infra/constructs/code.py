"""What the functions run: one code asset (functions/ + migrations/) and the two prebuilt layers."""

from __future__ import annotations

import shutil
from pathlib import Path

from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from layers.build import LAMBDA_PYTHON_VERSION, LAYER_NAMES, ensure_layers
from layers.deps.build import CA_BUNDLE_IN_LAMBDA
from layers.size_check import FUNCTION_CODE_DIRS
from layers.wheels import BUILD_DIR, REPO_ROOT

RUNTIMES = {"3.12": lambda_.Runtime.PYTHON_3_12, "3.13": lambda_.Runtime.PYTHON_3_13, "3.14": lambda_.Runtime.PYTHON_3_14}
ARCHITECTURES = {"arm64": lambda_.Architecture.ARM_64, "x86_64": lambda_.Architecture.X86_64}
STAGED_CODE_DIR = BUILD_DIR / "function-code"


class LayersNotBuilt(RuntimeError):
    """An explicitly given layers folder lacks a layer (the default folder is built when missing)."""


def stage_function_code(destination: Path = STAGED_CODE_DIR) -> Path:
    """Copy exactly what the functions need (functions/, migrations/) into one folder for the asset.

    The migrator reads ../../migrations relative to functions/migrate/migrator.py, so both keep
    their top-level names. Copying (instead of an exclude list over the repository) keeps .venv,
    .git, build/ and tests/ out for certain, and the asset hash changes only with these files.
    """
    if destination.exists():
        shutil.rmtree(destination)
    destination.mkdir(parents=True)
    for folder in FUNCTION_CODE_DIRS:
        shutil.copytree(REPO_ROOT / folder, destination / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return destination


class FunctionCode(Construct):
    """The shared code asset, runtime, architecture and layers of both functions.

    Without `layers_dir`, the layers under build/layers/<arch> are used, and built first (pip, no
    Docker) when missing or built for another Python, so `cdk deploy` needs no `make layer` before it.
    """

    def __init__(self, scope: Construct, construct_id: str, *, architecture: str, layers_dir: Path | None = None) -> None:
        super().__init__(scope, construct_id)
        self.runtime = RUNTIMES[LAMBDA_PYTHON_VERSION]
        self.architecture = ARCHITECTURES[architecture]
        self.code = lambda_.Code.from_asset(str(stage_function_code()))
        self.ca_bundle_path = CA_BUNDLE_IN_LAMBDA
        root = layers_dir or ensure_layers(architecture)
        missing = [name for name in LAYER_NAMES if not (root / name / "python").is_dir()]
        if missing:
            raise LayersNotBuilt(f"layer(s) {missing} not built in {root}: build them with `make layer` or omit layers_dir")
        python_tag = "cp" + LAMBDA_PYTHON_VERSION.replace(".", "")
        self.pyarrow_layer = self._layer(
            "PyarrowLayer", root / "pyarrow", f"pyarrow 26.0.1 (manylinux_2_28, {python_tag}, trimmed)"
        )
        self.deps_layer = self._layer("DepsLayer", root / "deps", "Powertools, PyMySQL, boto3/botocore and the RDS CA bundle")
        self.layers = [self.pyarrow_layer, self.deps_layer]

    def _layer(self, construct_id: str, path: Path, description: str) -> lambda_.LayerVersion:
        return lambda_.LayerVersion(
            self,
            construct_id,
            code=lambda_.Code.from_asset(str(path)),
            compatible_runtimes=[self.runtime],
            compatible_architectures=[self.architecture],
            description=description,
        )
