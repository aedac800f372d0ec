#!/usr/bin/env python3
"""CDK entry: `python app.py -c env=<name>` or `cdk synth|deploy -c env=<name>`; one stack per environment."""

from __future__ import annotations

import itertools
import json
import os
import sys
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import cx_api
from cdk_nag import AwsSolutionsChecks

from infra.config import ConfigError, load_env_config
from infra.stack import UpsellSignalsStack

REPO_ROOT = Path(__file__).resolve().parent


def context_from_argv(argv: list[str]) -> dict[str, str]:
    """`-c key=value` pairs, so `python app.py -c env=dev` works without the cdk CLI."""
    context: dict[str, str] = {}
    for flag, pair in itertools.pairwise(argv):
        if flag in ("-c", "--context") and "=" in pair:
            key, value = pair.split("=", 1)
            context[key] = value
    return context


def build_app(context: dict[str, str] | None = None, outdir: str | None = None) -> cdk.App:
    """The app with the chosen environment's stack, checked by cdk-nag (AwsSolutions) during synth."""
    settings = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    app = cdk.App(context={**settings, **(context or {})}, outdir=outdir)
    config = load_env_config(app.node.try_get_context("environments"), app.node.try_get_context("env"))
    UpsellSignalsStack(
        app,
        f"UpsellSignals-{config.name}",
        config=config,
        env=cdk.Environment(account=config.account, region=config.region),
        description=f"Passive upsell signals ingester ({config.name}): S3 Parquet -> RDS MariaDB",
    )
    # cdk-nag v3 is a policy-validation plugin: an unacknowledged finding fails synth.
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True, write_suppressions_to_cloud_formation=True))
    return app


def nag_errors(assembly: cx_api.CloudAssembly) -> list[str]:
    """Error-level annotations (cdk-nag findings left unsuppressed, construct errors) in the assembly."""
    errors: list[str] = []
    for stack in assembly.stacks:
        for message in stack.messages:
            if message.level == cx_api.SynthesisMessageLevel.ERROR:
                errors.append(f"{message.id}: {message.entry.data}")
    return errors


def main() -> None:
    argv = sys.argv[1:]
    # The cdk CLI passes its own output folder; run alone, the app writes to -o/--output or cdk.out.
    outdir = None if os.environ.get("CDK_OUTDIR") else _option(argv, ("-o", "--output"), "cdk.out")
    try:
        app = build_app(context_from_argv(argv), outdir=outdir)
    except ConfigError as error:
        sys.exit(f"cdk.json: {error}")
    try:
        assembly = app.synth()
    except RuntimeError as error:
        # cdk-nag and CDK's own validation fail here, after printing every finding above.
        sys.exit(f"synth failed: {error}")
    errors = nag_errors(assembly)
    if errors:
        sys.exit("synth found errors:\n" + "\n".join(errors))


def _option(argv: list[str], names: tuple[str, ...], default: str) -> str:
    for flag, value in itertools.pairwise(argv):
        if flag in names:
            return value
    return default


if __name__ == "__main__":
    main()
