"""cdk.json sets every feature flag a new `cdk init` project gets with the pinned aws-cdk-lib."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import aws_cdk

REPO_ROOT = Path(__file__).resolve().parents[2]
# Deliberate departures from the recommended values, each explained in docs/deploy.md ("Feature flags").
DEPARTURES = {
    # true adds a CDK custom resource (a Lambda with ec2:Authorize/RevokeSecurityGroup* rights) to empty
    # the VPC's default security group, which nothing here uses: every function has its own group.
    "@aws-cdk/aws-ec2:restrictDefaultSecurityGroup": False,
}


def recommended_flags() -> dict[str, Any]:
    """recommended-feature-flags.json from the installed aws-cdk-lib: what `cdk init` writes into cdk.json."""
    bundle = next((Path(aws_cdk.__file__).parent / "_jsii").glob("aws-cdk-lib@*.jsii.tgz"))
    with tarfile.open(bundle) as archive:
        member = archive.extractfile("package/recommended-feature-flags.json")
        assert member is not None
        flags: dict[str, Any] = json.load(member)
    return flags


def test_every_recommended_feature_flag_is_recorded_in_cdk_json() -> None:
    # Given the flags the pinned aws-cdk-lib recommends for new projects
    recommended = recommended_flags()
    # When reading cdk.json's context
    context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    # Then each is set, to the recommended value or to a documented departure
    assert len(recommended) > 50
    missing = sorted(set(recommended) - set(context))
    assert missing == []
    differing = {flag: context[flag] for flag in recommended if context[flag] != recommended[flag]}
    assert differing == DEPARTURES
