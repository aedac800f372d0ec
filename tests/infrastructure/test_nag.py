"""cdk-nag runs in synth: a new finding fails it, and every acknowledgement carries a reason."""

from __future__ import annotations

from pathlib import Path

import pytest
from aws_cdk import Stack
from aws_cdk import aws_sqs as sqs
from aws_cdk.assertions import Template

from tests.infrastructure.helpers import resources


def test_an_unacknowledged_finding_fails_synth(arm64_layers: Path, tmp_path: Path) -> None:
    from app import build_app

    # Given the dev app with one more queue that neither enforces TLS nor has a DLQ
    app = build_app({"env": "dev"}, outdir=str(tmp_path))
    stack = app.node.find_child("UpsellSignals-dev")
    assert isinstance(stack, Stack)
    sqs.Queue(stack, "CarelessQueue")
    # When synthesizing
    # Then cdk-nag's findings fail the synth
    with pytest.raises(RuntimeError, match=r"ValidationFailed[\s\S]*CarelessQueue[\s\S]*AwsSolutions-SQS4"):
        app.synth()


@pytest.mark.parametrize("environment", ["dev", "staging", "prod"])
def test_every_acknowledgement_has_a_reason(environment: str, synthesize) -> None:  # type: ignore[no-untyped-def]
    # Given an environment's synthesized template (synth itself proves no unacknowledged finding)
    template: Template = synthesize(environment)
    # When collecting the cdk_nag metadata written into it
    reasons = [
        rule
        for resource_type in (
            "AWS::IAM::Policy",
            "AWS::Lambda::Function",
            "AWS::RDS::DBInstance",
            "AWS::SQS::Queue",
            "AWS::IAM::Role",
        )
        for resource in resources(template, resource_type).values()
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
    ]
    # Then there are some, and each says why in words
    assert reasons
    for rule in reasons:
        assert len(rule.get("reason", "")) > 30, rule
