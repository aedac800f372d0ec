"""cdk.json settings: every environment validates; a missing, unknown or malformed setting is named."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from infra.config import ConfigError, CreatedDatabase, ImportedDatabase, ImportedVpc, load_env_config, parse_env_config

CDK_JSON = Path(__file__).resolve().parents[2] / "cdk.json"


def _environments() -> dict[str, Any]:
    return dict(json.loads(CDK_JSON.read_text())["context"]["environments"])


def test_every_environment_in_cdk_json_is_valid() -> None:
    # Given the committed cdk.json
    environments = _environments()
    # When each environment is parsed
    configs = {name: load_env_config(environments, name) for name in environments}
    # Then dev creates its database, staging and prod import theirs
    assert set(configs) == {"dev", "staging", "prod"}
    assert isinstance(configs["dev"].database, CreatedDatabase)
    assert isinstance(configs["staging"].database, ImportedDatabase)
    assert isinstance(configs["prod"].vpc, ImportedVpc) and configs["prod"].vpc.create_endpoints is False


def test_unknown_environment_lists_the_known_ones() -> None:
    # Given the committed environments
    # When asking for one that does not exist
    # Then the error names it and lists the known names
    with pytest.raises(ConfigError, match=r"unknown environment 'qa'; known: dev, prod, staging"):
        load_env_config(_environments(), "qa")


def test_missing_env_choice_says_how_to_choose() -> None:
    with pytest.raises(ConfigError, match=r"-c env=<name>"):
        load_env_config(_environments(), None)


def test_unknown_setting_is_refused_with_its_path() -> None:
    # Given dev with a typo in a nested setting
    raw = copy.deepcopy(_environments()["dev"])
    raw["ingest"]["memoryMB"] = 4096
    # When parsing
    # Then the error names the section and the unknown key
    with pytest.raises(ConfigError, match=r"environments\.dev\.ingest: unknown setting\(s\) \['memoryMB'\]"):
        parse_env_config("dev", raw)


def test_missing_required_setting_is_named() -> None:
    # Given staging without the imported database's secret
    raw = copy.deepcopy(_environments()["staging"])
    del raw["database"]["secretArn"]
    # When parsing
    # Then the error names it
    with pytest.raises(ConfigError, match=r"environments\.staging\.database\.secretArn is missing"):
        parse_env_config("staging", raw)


def test_malformed_values_are_refused() -> None:
    # Given dev with a threshold above 1 and a timeout beyond Lambda's limit
    raw = copy.deepcopy(_environments()["dev"])
    raw["guards"]["maxRejectRatio"] = 5
    with pytest.raises(ConfigError, match=r"guards\.maxRejectRatio must be a number between 0 and 1"):
        parse_env_config("dev", raw)
    raw = copy.deepcopy(_environments()["dev"])
    raw["ingest"]["timeoutSeconds"] = 1200
    with pytest.raises(ConfigError, match=r"ingest\.timeoutSeconds must be between 60 and 900"):
        parse_env_config("dev", raw)
    raw = copy.deepcopy(_environments()["dev"])
    raw["ingest"]["publishRowsPerSecond"] = 10
    with pytest.raises(ConfigError, match=r"ingest\.publishRowsPerSecond must be between 1000 and 1000000"):
        parse_env_config("dev", raw)
    # And a created VPC over three zones, which CDK would build over two without a word (the app
    # looks nothing up, and an environment-agnostic stack sees two AZs)
    raw = copy.deepcopy(_environments()["dev"])
    raw["vpc"]["maxAzs"] = 3
    with pytest.raises(ConfigError, match=r"vpc\.maxAzs must be 2: synth looks no zones up"):
        parse_env_config("dev", raw)


def test_imported_vpc_needs_one_subnet_and_route_table_per_zone() -> None:
    # Given staging with a route table missing
    raw = copy.deepcopy(_environments()["staging"])
    raw["vpc"]["privateSubnetRouteTableIds"] = raw["vpc"]["privateSubnetRouteTableIds"][:1]
    # When parsing
    # Then the mismatch is explained
    with pytest.raises(ConfigError, match=r"one private subnet and one route table per availability zone"):
        parse_env_config("staging", raw)


def test_config_is_frozen() -> None:
    config = load_env_config(_environments(), "dev")
    with pytest.raises(AttributeError):
        config.region = "us-east-1"  # type: ignore[misc]


def test_removal_policy_defaults_to_retain_and_dev_is_destroyable() -> None:
    # Given the committed environments, and one without removalPolicy
    environments = _environments()
    bare = copy.deepcopy(environments["prod"])
    bare.pop("removalPolicy")
    # When parsing them
    # Then dev is destroyable, prod keeps its data, and an unset policy is the safe one
    assert load_env_config(environments, "dev").removal == "destroy"
    assert load_env_config(environments, "prod").removal == "retain"
    assert parse_env_config("qa", bare).removal == "retain"


def test_a_malformed_removal_policy_is_named() -> None:
    # Given dev with a removal policy CloudFormation has no counterpart for here
    raw = copy.deepcopy(_environments()["dev"])
    raw["removalPolicy"] = "snapshot"
    # When parsing it
    # Then the error names the setting and the allowed values
    with pytest.raises(ConfigError, match=r"environments.dev.removalPolicy must be one of retain, destroy"):
        parse_env_config("dev", raw)


def test_a_placeholder_alarm_email_fails_where_the_environment_is_kept() -> None:
    # Given staging and prod (removalPolicy retain) with an example.com or .example address
    for name, address in (("staging", "oncall@example.com"), ("prod", "team@alerts.example")):
        raw = copy.deepcopy(_environments()[name])
        raw["alarmEmail"] = address
        # When parsing
        # Then synth stops: alarms would reach no one
        with pytest.raises(ConfigError, match=rf"environments\.{name}\.alarmEmail .* is a placeholder"):
            parse_env_config(name, raw)


def test_a_disposable_environment_may_use_a_placeholder_alarm_email() -> None:
    # Given dev (removalPolicy destroy) with its example.com address
    # When parsing
    # Then it is accepted: dev is for trying the stack out
    assert load_env_config(_environments(), "dev").alarm_email.endswith("@example.com")


def test_engine_version_is_a_major_line_and_a_minor_version_is_refused() -> None:
    # Given dev naming a full MariaDB version, and one naming a line the tests do not run
    raw = copy.deepcopy(_environments()["dev"])
    raw["database"]["engineVersion"] = "10.11.16"
    # When parsing
    # Then the minor version is refused with the line to give instead, and an untested line is refused
    with pytest.raises(ConfigError, match=r"names a minor version: give the major line \('10\.11'\)"):
        parse_env_config("dev", raw)
    raw["database"]["engineVersion"] = "11.4"
    with pytest.raises(ConfigError, match=r"not a line the tests run against"):
        parse_env_config("dev", raw)
    database = load_env_config(_environments(), "dev").database
    assert isinstance(database, CreatedDatabase) and database.engine_version == "10.11"


def test_existing_endpoints_must_be_listed_when_the_stack_creates_none() -> None:
    # Given prod (createEndpoints false) without its endpoints' security groups
    raw = copy.deepcopy(_environments()["prod"])
    raw["vpc"].pop("endpointSecurityGroupIds")
    # When parsing
    # Then synth says what to list and where the steps are
    with pytest.raises(ConfigError, match=r"vpc\.endpointSecurityGroupIds is missing: with createEndpoints false"):
        parse_env_config("prod", raw)
    raw["vpc"]["endpointSecurityGroupIds"] = []
    vpc = parse_env_config("prod", raw).vpc
    assert isinstance(vpc, ImportedVpc) and vpc.endpoint_security_group_ids == ()


def test_a_bucket_key_in_another_region_is_refused() -> None:
    # Given prod's SSE-KMS bucket key moved to another region by a typo
    raw = copy.deepcopy(_environments()["prod"])
    raw["bucket"]["kmsKeyArn"] = raw["bucket"]["kmsKeyArn"].replace("eu-west-1", "us-east-1")
    # When parsing
    # Then the mismatch is named before any deploy
    with pytest.raises(ConfigError, match=r"bucket\.kmsKeyArn is in us-east-1, the stack in eu-west-1"):
        parse_env_config("prod", raw)


def test_two_environments_on_one_database_server_are_refused() -> None:
    # Given a second environment, qa, importing staging's server under a database of its own
    environments = _environments()
    qa = copy.deepcopy(environments["staging"])
    qa["database"]["databaseName"] = "upsell_signals_qa"
    qa["database"]["instanceIdentifier"] = "another-name-for-it"
    environments["qa"] = qa
    # When either environment is chosen
    # Then synth stops, naming the shared server and the server-wide account they would fight over
    for name, other in (("qa", "staging"), ("staging", "qa")):
        with pytest.raises(
            ConfigError,
            match=rf"{name}\.database and environments\.{other}\.database import the same server"
            r" \(shared-mariadb-staging\..*upsell_ingest is server-wide",
        ):
            load_env_config(environments, name)
    # And environments on servers of their own are accepted
    qa["database"]["endpoint"] = "qa-mariadb.abcdefghijkl.eu-west-1.rds.amazonaws.com"
    assert load_env_config(environments, "qa").database.database_name == "upsell_signals_qa"
    assert load_env_config(environments, "staging").database.database_name == "upsell_signals"
    # And so is an instance of the same name in another account (identifiers are unique per account
    # and region), while the same name in the same account and region is the same server
    prod = environments["prod"]
    prod["database"]["instanceIdentifier"] = environments["staging"]["database"]["instanceIdentifier"]
    assert load_env_config(environments, "prod").account != load_env_config(environments, "staging").account
    qa["database"]["instanceIdentifier"] = environments["staging"]["database"]["instanceIdentifier"]
    with pytest.raises(ConfigError, match=r"import the same server \(shared-mariadb-staging\)"):
        load_env_config(environments, "qa")
