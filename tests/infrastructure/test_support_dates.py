"""Nothing a template deploys is within a year of its end of support: Lambda runtimes (ours and the
ones CDK and Secrets Manager add), and the RDS MariaDB major line.

A runtime past its deprecation date can no longer be created, then no longer be updated, and
CloudFormation fails the stack update that touches it (Lambda runtimes page, "Runtime use after
deprecation"); invocations go on. The functions CDK adds itself (the provider framework's
onEvent, Custom::S3AutoDeleteObjects) take their Node.js runtime from the pinned aws-cdk-lib,
and the hosted rotation functions (a Serverless Application Repository app, a nested stack) take
their Python runtime from the SemanticVersion the pinned aws-cdk-lib names: neither is chosen in
this repository, so a pin left alone for too long ages out without any line here changing.

The test fails from `SUPPORT_HORIZON_DAYS` before a date (run it with SUPPORT_CHECK_DATE=YYYY-MM-DD
to look ahead). An unknown runtime, rotation app version or engine line fails too: look its date
up and add it below with its source.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from datetime import date, timedelta
from typing import Any

import pytest
from aws_cdk.assertions import Template

from tests.infrastructure.conftest import ENVIRONMENTS

SUPPORT_HORIZON_DAYS = 365

# Lambda deprecation dates (the first phase: no more patches; creates are blocked about a month
# later, updates about two months later). https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html
# (as tabulated at https://endoflife.date/aws-lambda: "Node.js 24 ... Ends ... 30 Apr 2028",
# "Node.js 22 ... 30 Apr 2027", "Python 3.13 ... 30 Jun 2029", "Python 3.14 ... 30 Jun 2029").
# python3.12: Python 3.12's end of life, 2028-10 (https://devguide.python.org/versions/), which
# is when Lambda deprecates a Python runtime.
LAMBDA_RUNTIME_DEPRECATION = {
    "python3.12": date(2028, 10, 31),
    "python3.13": date(2029, 6, 30),
    "python3.14": date(2029, 6, 30),
    "nodejs22.x": date(2027, 4, 30),
    "nodejs24.x": date(2028, 4, 30),
}

# The hosted rotation app's runtime at the SemanticVersion aws-cdk-lib pins (the template holds
# only the app's id and version). 1.1.670 and its aws-cn/aws-us-gov versions came with
# aws/aws-cdk#37660: "The latest semantic versions use Python 3.12 for the rotation lambda
# functions, instead of Python 3.10". Check a new version with
# `aws serverlessrepo get-application --application-id <id> --semantic-version <v>`.
ROTATION_APP_RUNTIME = {
    ("SecretsManagerRDSMariaDBRotationSingleUser", "1.1.670"): "python3.12",
}

# RDS end of standard support per MariaDB major line; RDS for MariaDB has no Extended Support
# (RDS API SupportedEngineLifecycle: "For Amazon RDS for MariaDB, this parameter only returns the
# value open-source-rds-standard-support"). 10.11: https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/MariaDB.Concepts.VersionMgmt.html
# (2028-02-29, as https://endoflife.date/api/v1/products/amazon-rds-mariadb gives it); the
# community line ends 2028-02-16 ("supported until 16 Feb 2028", mariadb.com release notes).
RDS_MARIADB_END_OF_STANDARD_SUPPORT = {"10.11": date(2028, 2, 29)}


def check_date() -> date:
    given = os.environ.get("SUPPORT_CHECK_DATE")
    return date.fromisoformat(given) if given else date.today()


def lambda_runtimes(template: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(logical id, runtime) of every function in the template, ours and CDK's own."""
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Lambda::Function":
            yield logical_id, resource["Properties"]["Runtime"]


def rotation_apps(template: Mapping[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(logical id, application name, semantic version) of every nested SAR app in the aws partition.

    The environments deploy to commercial regions (cdk.json); the aws-cn and aws-us-gov entries
    of the same mapping name older versions this stack never deploys.
    """
    mappings = template.get("Mappings", {})
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Application":
            continue
        location = resource["Properties"]["Location"]
        mapping = mappings[location["ApplicationId"]["Fn::FindInMap"][0]]
        partition = mapping["aws"]
        yield logical_id, partition["applicationId"].rsplit("/", 1)[1], partition["semanticVersion"]


def _template(synthesize: Callable[[str], Template], environment: str) -> Mapping[str, Any]:
    return synthesize(environment).to_json()


def _within_horizon(end: date) -> bool:
    return end - check_date() <= timedelta(days=SUPPORT_HORIZON_DAYS)


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_no_function_uses_a_lambda_runtime_deprecated_within_a_year(
    synthesize: Callable[[str], Template], environment: str
) -> None:
    # Given every function the environment's template creates, CDK's own included
    template = _template(synthesize, environment)
    runtimes = dict(lambda_runtimes(template))
    assert runtimes
    # Then each runtime's deprecation date is known and more than a year away
    unknown = {key: runtime for key, runtime in runtimes.items() if runtime not in LAMBDA_RUNTIME_DEPRECATION}
    assert not unknown, f"add the deprecation date (and its source) of {unknown}"
    ageing = {
        key: f"{runtime} deprecated {LAMBDA_RUNTIME_DEPRECATION[runtime]}"
        for key, runtime in runtimes.items()
        if _within_horizon(LAMBDA_RUNTIME_DEPRECATION[runtime])
    }
    assert not ageing, f"within {SUPPORT_HORIZON_DAYS} days of {check_date()}: {ageing}"


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_the_hosted_rotation_functions_runtime_is_known_and_not_deprecated_within_a_year(
    synthesize: Callable[[str], Template], environment: str
) -> None:
    # Given the Secrets Manager rotation apps (nested stacks whose runtime is not in our template)
    apps = list(rotation_apps(_template(synthesize, environment)))
    assert apps
    for logical_id, application, version in apps:
        # Then the version aws-cdk-lib pins is one whose runtime was looked up, and it is not ageing out
        runtime = ROTATION_APP_RUNTIME.get((application, version))
        assert runtime, f"{logical_id}: look up the Lambda runtime of {application} {version} and add it"
        deprecation = LAMBDA_RUNTIME_DEPRECATION[runtime]
        assert not _within_horizon(deprecation), f"{logical_id}: {application} {version} runs {runtime}, deprecated {deprecation}"


def test_the_created_databases_engine_line_is_in_standard_support_for_a_year(dev_template: Template) -> None:
    # Given the database dev creates (staging and prod import theirs: their owners watch the line)
    instances = [
        resource["Properties"]
        for resource in dev_template.to_json()["Resources"].values()
        if resource["Type"] == "AWS::RDS::DBInstance"
    ]
    assert [instance["Engine"] for instance in instances] == ["mariadb"]
    line = instances[0]["EngineVersion"]
    # Then RDS's standard support of its major line lasts more than a year from now
    assert line in RDS_MARIADB_END_OF_STANDARD_SUPPORT, f"add RDS's end of standard support of MariaDB {line}"
    end = RDS_MARIADB_END_OF_STANDARD_SUPPORT[line]
    assert not _within_horizon(end), f"RDS ends standard support of MariaDB {line} on {end}: move to a newer line"
