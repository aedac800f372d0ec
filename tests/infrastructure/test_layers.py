"""The Docker-free layers: trimmed as documented, under Lambda's 250 MB, and pyarrow works without numpy."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from infra.constructs.code import stage_function_code
from layers.build import LAMBDA_PYTHON_VERSION, build_local_test_layers, ensure_layers, layers_are_current
from layers.pyarrow.build import missing_libraries
from layers.size_check import LAMBDA_UNZIPPED_LIMIT_BYTES, SizeLimitExceeded, check_size
from tests.factories import snowflake_table, write_pyarrow

ROWS = 2_000


def test_built_layers_fit_lambda_limit_with_the_function(arm64_layers: Path) -> None:
    # Given the arm64 layers built by `make layer`
    # When measuring function + layers
    report = check_size({"pyarrow": arm64_layers / "pyarrow", "deps": arm64_layers / "deps"})
    # Then the total is under 250 MB, with the figures recorded in the manifest
    assert report.total_bytes < LAMBDA_UNZIPPED_LIMIT_BYTES
    manifest = json.loads((arm64_layers / "manifest.json").read_text())
    assert {name: manifest["parts_bytes"][name] for name in ("pyarrow", "deps")} == {
        name: report.parts[name] for name in ("pyarrow", "deps")
    }
    assert manifest["pyarrow_wheel_unzipped_bytes"] > manifest["pyarrow_trimmed_bytes"] >= manifest["parts_bytes"]["pyarrow"]


def test_size_check_fails_the_build_over_the_limit(tmp_path: Path) -> None:
    # Given a "layer" of 2 KB and a limit of 1 KB
    layer = tmp_path / "layer" / "python"
    layer.mkdir(parents=True)
    (layer / "big.bin").write_bytes(b"\0" * 2048)
    # When checking the size
    # Then the check fails naming the parts
    with pytest.raises(SizeLimitExceeded, match=r"layer"):
        check_size({"layer": tmp_path / "layer"}, function_bytes=0, limit=1024)


def test_pyarrow_layer_is_trimmed_but_keeps_what_lib_links(arm64_layers: Path) -> None:
    # Given the arm64 pyarrow layer
    package = arm64_layers / "pyarrow" / "python" / "pyarrow"
    names = {path.name for path in package.iterdir()}
    # When looking for what the trim removes and what must stay
    # Then Flight, Arrow's S3 filesystem, tests, headers and duplicate .so copies are gone
    assert not {name for name in names if "flight" in name or "s3" in name}
    assert not {"tests", "include", "libarrow.so", "libarrow_python.so"} & names
    assert not any(name.endswith(".so.2600.1.0") for name in names)
    # And acero, substrait, dataset, compute and parquet stay, with every linked library present
    for library in ("libarrow_acero", "libarrow_substrait", "libarrow_dataset", "libarrow_compute", "libparquet"):
        assert f"{library}.so.2600" in names, library
    assert missing_libraries(package) == {}
    assert not (arm64_layers / "pyarrow" / "python" / "numpy").exists()


def test_deps_layer_carries_the_rds_ca_bundle_where_the_functions_look(arm64_layers: Path) -> None:
    # Given the deps layer (unpacked under /opt in Lambda)
    bundle = arm64_layers / "deps" / "certs" / "rds-ca-bundle.pem"
    # When loading it as a trust store
    context = ssl.create_default_context(cafile=str(bundle))
    subjects = [str(cert["subject"]) for cert in context.get_ca_certs()]
    # Then it holds Amazon RDS root CAs (the ones RDS instances chain to)
    assert any("Amazon RDS" in subject and "Root CA RSA2048 G1" in subject for subject in subjects)


def test_the_layers_hold_nothing_of_the_machine_that_built_them(arm64_layers: Path) -> None:
    # Given both built layers
    repo = str(Path(__file__).resolve().parents[2]).encode()
    # When reading every file in them
    # Then none names this checkout's folder (pip's console scripts did, in their first line and
    # in their packages' RECORD hashes): the same pins give the same bytes from any checkout, so a
    # deploy from another folder publishes no new layer version
    assert not (arm64_layers / "deps" / "python" / "bin").exists()
    naming = [str(path) for path in arm64_layers.rglob("*") if path.is_file() and repo in path.read_bytes()]
    assert naming == []


def _pins(path: Path) -> dict[str, str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return {name.lower().replace("_", "-"): version for name, version in (line.split("==") for line in lines if line)}


def test_deps_layer_pins_are_the_pins_the_tests_run_with() -> None:
    # Given requirements.txt (what the venv, and so every test, imports) and the deps layer's list
    repo = Path(__file__).resolve().parents[2]
    runtime = _pins(repo / "requirements.txt")
    layer = _pins(repo / "layers" / "deps" / "requirements.txt")
    # When comparing every package the functions import besides pyarrow (its own layer)
    shared = {name: version for name, version in runtime.items() if name != "pyarrow"}
    # Then the layer ships exactly those versions, boto3 and botocore included, and no X-Ray SDK
    assert {name: layer.get(name) for name in shared} == shared
    assert {"boto3", "botocore", "s3transfer"} <= set(layer)
    assert "aws-xray-sdk" not in layer and "aws-xray-sdk" not in runtime


def test_deps_layer_ships_the_pinned_boto3_instead_of_the_runtimes(arm64_layers: Path) -> None:
    # Given the built deps layer (/opt/python comes before the runtime's own boto3 on sys.path)
    tree = arm64_layers / "deps" / "python"
    pins = _pins(Path(__file__).resolve().parents[2] / "requirements.txt")
    # When listing what it installed
    installed = dict(path.name.removesuffix(".dist-info").lower().split("-", 1) for path in tree.glob("*.dist-info"))
    # Then boto3 and botocore are there at the tested versions, and the X-Ray SDK is not
    assert (installed["boto3"], installed["botocore"]) == (pins["boto3"], pins["botocore"])
    assert not (tree / "aws_xray_sdk").exists()


CHILD = """
import json, sys
from pathlib import Path
code, pyarrow_tree, deps_tree, parquet, work = sys.argv[1:6]
sys.path[:0] = [code, pyarrow_tree, deps_tree]
try:
    import numpy
except ImportError:
    pass
else:
    raise SystemExit("numpy is importable: " + numpy.__file__)
import pyarrow
assert pyarrow.__file__.startswith(pyarrow_tree), pyarrow.__file__
import functions.ingest.handler  # the whole ingest import graph
from functions.ingest.parquet_reader import SignalFile
from functions.ingest.load_files import write_load_file
from functions.ingest.validation import validate_batch
rows = valid = 0
for first_row, batch in SignalFile(Path(parquet)).batches(0, 500):
    checked = validate_batch(batch, first_row)
    rows += checked.rows_read
    valid += checked.valid_rows.num_rows
    written = write_load_file(checked.valid_rows, Path(work) / "load.tsv")
python = f"{sys.version_info.major}.{sys.version_info.minor}"
print(json.dumps({"rows": rows, "valid": valid, "written": written, "pyarrow": pyarrow.__version__, "python": python}))
"""


def _read_with_layers_only(interpreter: str, python_version: str | None, tmp_path: Path) -> dict[str, object]:
    """Run CHILD in `interpreter` with nothing but the function code and layers built for its Python."""
    layers = build_local_test_layers(python_version)
    code = stage_function_code(tmp_path / "code")
    parquet = write_pyarrow(snowflake_table(ROWS), tmp_path / "data.parquet", row_group_rows=700)
    # -I: no PYTHON* variables, -S: no site-packages, so no venv numpy
    command = [
        interpreter, "-I", "-S", "-c", CHILD,
        str(code), str(layers / "pyarrow" / "python"), str(layers / "deps" / "python"), str(parquet), str(tmp_path),
    ]  # fmt: skip
    completed = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]
    result: dict[str, object] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def lambda_python_interpreter() -> str | None:
    """An interpreter of the Lambda runtime's Python (pyenv's, or python3.13 on PATH), if this machine has one."""
    name = f"python{LAMBDA_PYTHON_VERSION}"
    candidates = [str(path) for path in sorted(Path.home().glob(f".pyenv/versions/{LAMBDA_PYTHON_VERSION}.*/bin/{name}"))]
    candidates.extend(filter(None, [shutil.which(name)]))
    for candidate in candidates:
        # A pyenv shim exists for every installed version but runs only where that version is selected.
        if subprocess.run([candidate, "-c", "pass"], capture_output=True, check=False).returncode == 0:
            return candidate
    return None


@pytest.mark.slow
def test_ingest_reads_parquet_with_only_the_trimmed_layer_and_no_numpy(tmp_path: Path) -> None:
    # Given the same trimmed layers built for this machine, and a Snowflake-style file
    # When an isolated interpreter imports the ingest and reads, validates and writes the load file from the layers alone
    result = _read_with_layers_only(sys.executable, None, tmp_path)
    # Then every row is read and validated, and the load file is written
    assert result["rows"] == ROWS
    assert result["valid"] > 0 and result["written"] > 0  # type: ignore[operator]
    assert result["pyarrow"] == "26.0.1"


@pytest.mark.slow
def test_the_ingest_runs_from_the_layers_on_the_lambda_runtimes_python(tmp_path: Path) -> None:
    # Given an interpreter of the runtime's Python (3.13) and the layers built for it, as Lambda will load them
    interpreter = lambda_python_interpreter()
    # make test builds the local Lambda on that Python first, so a machine without it fails there, never skips
    assert interpreter is not None, f"no python{LAMBDA_PYTHON_VERSION} on this machine (pyenv's is used where present)"
    # When it imports the ingest and reads, validates and writes the load file from the layers alone
    result = _read_with_layers_only(interpreter, LAMBDA_PYTHON_VERSION, tmp_path)
    # Then the whole path works on that Python
    assert result["rows"] == ROWS
    assert result["python"] == LAMBDA_PYTHON_VERSION


def test_the_app_builds_missing_layers_and_rebuilds_stale_ones(tmp_path: Path) -> None:
    # Given a clean clone's build folder (no layers)
    root = tmp_path / "layers"
    assert not layers_are_current(root, "arm64")
    # When the CDK app asks for the layers
    assert ensure_layers("arm64", root) == root
    # Then they are built for the runtime's Python, and a second call reuses them
    manifest = root / "manifest.json"
    assert json.loads(manifest.read_text())["python_version"] == LAMBDA_PYTHON_VERSION
    built_at = manifest.stat().st_mtime_ns
    ensure_layers("arm64", root)
    assert manifest.stat().st_mtime_ns == built_at
    # And layers left from another runtime's Python are rebuilt rather than deployed
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "python_version": "3.12"}))
    ensure_layers("arm64", root)
    assert json.loads(manifest.read_text())["python_version"] == LAMBDA_PYTHON_VERSION
