"""Removal by environment: prod keeps its logs, dead letters and keys; dev leaves nothing behind on `cdk destroy`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from aws_cdk.assertions import Template

from infra.stack import REMOVABLE_BY_ENVIRONMENT
from tests.infrastructure.helpers import resources
from tests.infrastructure.test_migrate_first import CDK_JSON


def _deletion_policies(template: Template) -> dict[str, str]:
    """DeletionPolicy of every log group, queue and key in the template, by logical id."""
    return {
        logical_id: resource.get("DeletionPolicy", "Delete")
        for resource_type in REMOVABLE_BY_ENVIRONMENT
        for logical_id, resource in resources(template, resource_type).items()
    }


def test_prod_retains_its_log_groups_dead_letters_and_keys(synthesize: Callable[[str], Template]) -> None:
    # Given prod
    template = synthesize("prod")
    # When reading what happens to its logs, queue and keys on removal
    policies = _deletion_policies(template)
    # Then every one is kept (and kept on replacement too); a log group is removed only when the
    # create that made it rolls back, so its fixed name does not block the next attempt
    assert {resource_type for resource_type in REMOVABLE_BY_ENVIRONMENT if resources(template, resource_type)} == set(
        REMOVABLE_BY_ENVIRONMENT
    )
    log_groups = set(resources(template, "AWS::Logs::LogGroup"))
    assert {policies[key] for key in log_groups} == {"RetainExceptOnCreate"}
    assert {policy for key, policy in policies.items() if key not in log_groups} == {"Retain"}
    for resource_type in REMOVABLE_BY_ENVIRONMENT:
        for resource in resources(template, resource_type).values():
            assert resource["UpdateReplacePolicy"] == "Retain"


def test_dev_deletes_everything_including_a_bucket_with_files_in_it(dev_template: Template) -> None:
    # Given dev (removalPolicy destroy)
    # When reading removal policies, the buckets and their clean-up
    policies = _deletion_policies(dev_template)
    buckets = resources(dev_template, "AWS::S3::Bucket")
    emptied = {
        resource["Properties"]["BucketName"]["Ref"] for resource in resources(dev_template, "Custom::S3AutoDeleteObjects").values()
    }
    # Then logs, queue and keys go, and both buckets are emptied before CloudFormation deletes them
    assert policies and set(policies.values()) == {"Delete"}
    assert {bucket["DeletionPolicy"] for bucket in buckets.values()} == {"Delete"}
    assert emptied == set(buckets)
    database = next(iter(resources(dev_template, "AWS::RDS::DBInstance").values()))
    assert database["DeletionPolicy"] == "Delete"
    assert database["Properties"]["DeletionProtection"] is False


def test_a_created_database_leaves_a_snapshot_wherever_removals_are_retained(tmp_path: Path) -> None:
    # Given dev's settings with removalPolicy retain, its database still without deletion protection
    from app import build_app

    environments = json.loads(CDK_JSON.read_text())["context"]["environments"]
    environments["dev"] |= {"removalPolicy": "retain", "alarmEmail": "data-platform@acme.com"}
    assert environments["dev"]["database"]["deletionProtection"] is False
    app = build_app({"env": "dev", "environments": environments}, outdir=str(tmp_path / "cdk-dev-retained"))  # type: ignore[dict-item]
    template = Template.from_stack(app.node.find_child("UpsellSignals-dev"))  # type: ignore[arg-type]
    # When reading what removing the instance does
    database = next(iter(resources(template, "AWS::RDS::DBInstance").values()))
    # Then CloudFormation takes a final snapshot first, as it does for a protected one
    assert (database["DeletionPolicy"], database["UpdateReplacePolicy"]) == ("Snapshot", "Snapshot")
