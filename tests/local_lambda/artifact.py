"""What the local Lambda runs: the synthesized stack's assets and settings, and a runtime directory.

The function code and layers come from `cdk synth` output (the app's own `build_app`, with the
environment's architecture set to this machine's, so the layers are the stack's own build for a
CPU this machine can load). Timeout, memory, handler, environment and async settings come from
the same template, so a test fails when the template and the code disagree.

The runtime directory stands in for what the managed python3.13 runtime provides in /var/runtime:
the runtime interface client (`awslambdaric`, PyPI, pinned). boto3 comes from the deps layer, pinned,
ahead of the runtime's own copy, as it does in Lambda.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from layers.build import LAMBDA_PYTHON_VERSION
from layers.wheels import BUILD_DIR, REPO_ROOT

# The Python runtime interface client AWS publishes (aws/aws-lambda-python-runtime-interface-client);
# its wheel for cp313 carries the native runtime_client extension, so nothing compiles here.
AWSLAMBDARIC = "awslambdaric==4.2.2"
# boto3 comes with the deps layer, pinned, ahead of the runtime's own (as in Lambda): only the client is added.
RUNTIME_PACKAGES = (AWSLAMBDARIC,)
LOCAL_LAMBDA_DIR = BUILD_DIR / "local-lambda"
# What decides the synthesized artifact: a change to any of these re-synthesizes it.
ARTIFACT_SOURCES = ("app.py", "cdk.json", "infra", "functions", "migrations", "layers")


class LocalLambdaSetupError(RuntimeError):
    """The local Lambda cannot be built: no interpreter of the runtime's Python, or an install failed."""


def local_architecture() -> str:
    return "arm64" if platform.machine() in ("aarch64", "arm64") else "x86_64"


def lambda_python() -> Path:
    """An interpreter of the Lambda runtime's Python (pyenv's, or pythonX.Y on PATH); raises, never skips."""
    name = f"python{LAMBDA_PYTHON_VERSION}"
    candidates = sorted(Path.home().glob(f".pyenv/versions/{LAMBDA_PYTHON_VERSION}.*/bin/{name}"))
    on_path = shutil.which(name)
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        # A pyenv shim exists for every version but runs only where that version is selected.
        if subprocess.run([str(candidate), "-c", "pass"], capture_output=True, check=False).returncode == 0:
            return candidate
    raise LocalLambdaSetupError(
        f"no {name} on this machine: the local Lambda runs the function on the runtime's own Python "
        f"(pyenv's {LAMBDA_PYTHON_VERSION} is looked for under ~/.pyenv/versions)"
    )


def runtime_dir(python: Path | None = None) -> Path:
    """awslambdaric for `python`, installed once under build/local-lambda."""
    python = python or lambda_python()
    tag = f"cp{LAMBDA_PYTHON_VERSION.replace('.', '')}-{local_architecture()}"
    destination = LOCAL_LAMBDA_DIR / f"runtime-{tag}"
    marker = destination / f".installed-{hashlib.sha256(' '.join(RUNTIME_PACKAGES).encode()).hexdigest()[:16]}"
    if marker.exists():
        return destination
    staging = destination.with_name(destination.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    command = [
        str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
        "--only-binary=:all:", "--target", str(staging), *RUNTIME_PACKAGES,
    ]  # fmt: skip
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise LocalLambdaSetupError(f"installing {' '.join(RUNTIME_PACKAGES)} failed:\n{completed.stderr[-3000:]}")
    shutil.rmtree(destination, ignore_errors=True)
    staging.rename(destination)
    marker.touch()
    return destination


def _sources_fingerprint() -> str:
    digest = hashlib.sha256(local_architecture().encode())
    for top in ARTIFACT_SOURCES:
        root = REPO_ROOT / top
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        for path in paths:
            digest.update(str(path.relative_to(REPO_ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def synthesized(environment: str = "dev") -> Path:
    """cdk.out for `environment` with this machine's architecture, synthesized when its sources changed."""
    outdir = LOCAL_LAMBDA_DIR / "cdk.out" / environment
    fingerprint = _sources_fingerprint()
    stamp = outdir / ".sources"
    if stamp.is_file() and stamp.read_text() == fingerprint:
        return outdir
    os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
    os.environ.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")
    from app import build_app

    settings = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]["environments"]
    settings[environment] = {**settings[environment], "architecture": local_architecture()}
    shutil.rmtree(outdir, ignore_errors=True)
    build_app({"env": environment, "environments": settings}, outdir=str(outdir)).synth()  # type: ignore[arg-type]
    stamp.write_text(fingerprint)
    return outdir


@dataclass(frozen=True, kw_only=True)
class FunctionSpec:
    """One function as Lambda would run it: what the template says, with local paths for its assets."""

    name: str
    handler: str
    runtime: str
    timeout_seconds: int
    memory_mb: int
    code_dir: Path
    layer_dirs: tuple[Path, ...]
    environment: dict[str, str]  # as the template has it: Lambda's paths (/opt, /tmp)
    local_environment: dict[str, str | None] = field(default_factory=dict)  # host values, set as given; None removes
    max_retry_attempts: int = 2
    max_event_age_seconds: int = 21_600
    on_failure_queue_url: str | None = None
    # DeadLetterConfig (AWS::Lambda::Function): where a durable function's failed async executions send their event.
    dead_letter_queue_url: str | None = None
    region: str = "us-east-1"
    account: str = "123456789012"
    unresolved: dict[str, str] = field(default_factory=dict)
    # DurableConfig (AWS::Lambda::Function): None for a plain function; a durable one runs on tests/local_lambda/durable.py.
    durable_execution_timeout_seconds: int | None = None
    durable_retention_days: int | None = None

    @property
    def durable(self) -> bool:
        return self.durable_execution_timeout_seconds is not None

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account}:function:{self.name}"

    def with_environment(self, **values: str | None) -> FunctionSpec:
        """The same function with environment values for this machine (a stand-in's address), or removed (None).

        These are set as given, after the template's values have had /opt and /tmp mapped to the
        environment's own folders.
        """
        unresolved = {k: v for k, v in self.unresolved.items() if k not in values}
        return replace(self, local_environment={**self.local_environment, **values}, unresolved=unresolved)


class Template:
    """A synthesized CloudFormation template and its assembly folder (asset.<hash> directories)."""

    def __init__(self, assembly: Path, stack_name: str) -> None:
        self.assembly = assembly
        self.body: dict[str, Any] = json.loads((assembly / f"{stack_name}.template.json").read_text())
        self.resources: dict[str, dict[str, Any]] = self.body["Resources"]

    def logical_id_of_function(self, function_name: str) -> str:
        for logical_id, resource in self.resources.items():
            if resource["Type"] == "AWS::Lambda::Function" and resource["Properties"].get("FunctionName") == function_name:
                return logical_id
        raise KeyError(f"no AWS::Lambda::Function named {function_name!r} in the template")

    def asset_dir(self, code: Mapping[str, Any]) -> Path:
        # CDK stages each file asset in the assembly as asset.<hash>; the S3 key is <hash>.zip.
        path = self.assembly / f"asset.{str(code['S3Key']).removesuffix('.zip')}"
        if not path.is_dir():
            raise FileNotFoundError(f"asset {path} missing from the assembly")
        return path

    def resolve(self, value: Any, stand_ins: Mapping[str, str]) -> str | None:
        """A literal, or a Ref/GetAtt Arn of a resource whose logical id starts with a key of `stand_ins`."""
        if isinstance(value, str | int | float):
            return str(value)
        target = value.get("Ref") if isinstance(value, dict) else None
        if isinstance(value, dict) and "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"][0]
        for prefix, stand_in in stand_ins.items():
            if isinstance(target, str) and target.startswith(prefix):
                return stand_in
        return None

    def function_spec(self, function_name: str, stand_ins: Mapping[str, str] | None = None, *, region: str = "us-east-1") -> FunctionSpec:
        """The named function's settings; Refs resolved through `stand_ins` (logical-id prefix -> local value).

        An environment value the stand-ins cannot resolve is kept in `unresolved`, and the local
        Lambda refuses to start until the test gives it (a new Ref in the template fails loudly).
        """
        stand_ins = stand_ins or {}
        logical_id = self.logical_id_of_function(function_name)
        properties = self.resources[logical_id]["Properties"]
        environment: dict[str, str] = {}
        unresolved: dict[str, str] = {}
        for name, raw in properties.get("Environment", {}).get("Variables", {}).items():
            resolved = self.resolve(raw, stand_ins)
            if resolved is None:
                unresolved[name] = json.dumps(raw)
            else:
                environment[name] = resolved
        layers = tuple(self.asset_dir(self.resources[layer["Ref"]]["Properties"]["Content"]) for layer in properties.get("Layers", []))
        spec = FunctionSpec(
            name=function_name,
            handler=properties["Handler"],
            runtime=properties["Runtime"],
            timeout_seconds=int(properties.get("Timeout", 3)),
            memory_mb=int(properties.get("MemorySize", 128)),
            code_dir=self.asset_dir(properties["Code"]),
            layer_dirs=layers,
            environment=environment,
            unresolved=unresolved,
            region=region,
            durable_execution_timeout_seconds=_int_or_none(properties.get("DurableConfig", {}).get("ExecutionTimeout")),
            durable_retention_days=_int_or_none(properties.get("DurableConfig", {}).get("RetentionPeriodInDays")),
        )
        dead_letter_target = properties.get("DeadLetterConfig", {}).get("TargetArn")
        if dead_letter_target is not None:
            queue_url = self.resolve(dead_letter_target, stand_ins)
            if queue_url is None:
                spec = replace(spec, unresolved={**spec.unresolved, "dead-letter queue": json.dumps(dead_letter_target)})
            spec = replace(spec, dead_letter_queue_url=queue_url)
        return self._with_async_settings(spec, logical_id, stand_ins)

    def _with_async_settings(self, spec: FunctionSpec, logical_id: str, stand_ins: Mapping[str, str]) -> FunctionSpec:
        for resource in self.resources.values():
            properties = resource["Properties"]
            if resource["Type"] != "AWS::Lambda::EventInvokeConfig" or properties.get("FunctionName") != {"Ref": logical_id}:
                continue
            destination = properties.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
            queue_url = self.resolve(destination, stand_ins) if destination is not None else None
            if destination is not None and queue_url is None:
                spec = replace(spec, unresolved={**spec.unresolved, "on-failure destination": json.dumps(destination)})
            return replace(
                spec,
                max_retry_attempts=int(properties.get("MaximumRetryAttempts", 2)),
                max_event_age_seconds=int(properties.get("MaximumEventAgeInSeconds", 21_600)),
                on_failure_queue_url=queue_url,
            )
        return spec


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def merged_layers(layer_dirs: tuple[Path, ...]) -> Path:
    """The layers extracted into one /opt in order, later over earlier, as Lambda does; hard links, built once."""
    key = hashlib.sha256("\0".join(str(path) for path in layer_dirs).encode()).hexdigest()[:16]
    opt = LOCAL_LAMBDA_DIR / "opt" / key
    if opt.is_dir():
        return opt
    staging = opt.with_name(key + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for layer in layer_dirs:
        shutil.copytree(layer, staging, dirs_exist_ok=True, copy_function=_link_or_copy)
    staging.rename(opt)
    return opt


def _link_or_copy(source: str, destination: str) -> None:
    if os.path.exists(destination):
        os.unlink(destination)
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)
