"""Infrastructure fixtures: the layers built once per session (cached), templates synthesized once per environment."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from aws_cdk.assertions import Template

from layers.build import build_layers, layer_root

os.environ.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")

ENVIRONMENTS = ("dev", "staging", "prod")


@pytest.fixture(scope="session")
def arm64_layers() -> Path:
    """The real arm64 layers (what every environment deploys), built and size-checked as `make layer` does."""
    build_layers("arm64")
    return layer_root("arm64")


@pytest.fixture(scope="session")
def synthesize(arm64_layers: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Template]:
    """Synthesize an environment through app.py's build_app (cdk-nag included) once; its template."""
    from app import build_app

    templates: dict[str, Template] = {}

    def template_for(environment: str) -> Template:
        if environment not in templates:
            app = build_app({"env": environment}, outdir=str(tmp_path_factory.mktemp(f"cdk-{environment}")))
            stack = app.node.find_child(f"UpsellSignals-{environment}")
            templates[environment] = Template.from_stack(stack)  # type: ignore[arg-type]
        return templates[environment]

    return template_for


@pytest.fixture(scope="session")
def dev_template(synthesize: Callable[[str], Template]) -> Template:
    return synthesize("dev")
