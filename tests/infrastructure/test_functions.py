"""Both functions: one code asset, the layers' Python on the configured architecture, both layers attached and matching."""

from __future__ import annotations

from aws_cdk.assertions import Template

from tests.infrastructure.helpers import logical_id_of_function, resources


def test_both_layers_are_attached_to_both_functions_and_match_their_runtime(dev_template: Template) -> None:
    # Given the dev stack (arm64)
    layers = resources(dev_template, "AWS::Lambda::LayerVersion")
    functions = resources(dev_template, "AWS::Lambda::Function")
    # When reading each function's layers, runtime and architecture
    assert len(layers) == 2
    for prefix in ("Ingest", "Migrations"):
        function = functions[logical_id_of_function(dev_template, prefix)]["Properties"]
        # Then it uses both layers, built for the same runtime and architecture it runs on
        assert sorted(layer["Ref"] for layer in function["Layers"]) == sorted(layers)
        assert function["Runtime"] == "python3.13"
        assert function["Architectures"] == ["arm64"]
        for layer in layers.values():
            assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
            assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]


def test_both_functions_share_one_code_asset_and_have_fixed_names(dev_template: Template) -> None:
    # Given the dev stack
    functions = resources(dev_template, "AWS::Lambda::Function")
    ingest = functions[logical_id_of_function(dev_template, "Ingest")]["Properties"]
    migrate = functions[logical_id_of_function(dev_template, "Migrations")]["Properties"]
    # When comparing their code and names
    # Then they deploy the same asset (functions/ + migrations/) under names operators can type
    assert ingest["Code"] == migrate["Code"]
    assert ingest["FunctionName"] == "upsell-signals-sync-dev"
    assert migrate["FunctionName"] == "upsell-signals-migrate-dev"
    assert ingest["Handler"] == "functions.ingest.continuation.handler"
    assert ingest["TracingConfig"] == {"Mode": "Active"}


def test_functions_log_to_their_own_groups_with_the_configured_retention(dev_template: Template) -> None:
    # Given dev (logRetentionDays 30)
    groups = resources(dev_template, "AWS::Logs::LogGroup")
    functions = resources(dev_template, "AWS::Lambda::Function")
    for prefix in ("Ingest", "Migrations"):
        # When following each function's logging config to its group
        group_id = functions[logical_id_of_function(dev_template, prefix)]["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        # Then the group keeps logs 30 days
        assert groups[group_id]["Properties"]["RetentionInDays"] == 30
