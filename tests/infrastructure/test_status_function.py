"""The status function: capacity of its own, no pyarrow layer, its own account's secret and nothing else."""

from __future__ import annotations

from aws_cdk.assertions import Template

from tests.infrastructure.helpers import logical_id_of_function, only, resources, role_statements


def _status(template: Template) -> dict:  # type: ignore[type-arg]
    return resources(template, "AWS::Lambda::Function")[logical_id_of_function(template, "Status")]["Properties"]


def test_status_has_reserved_concurrency_of_its_own_apart_from_the_ingest(dev_template: Template) -> None:
    # Given dev, whose ingest reserves 2 executions that a backfill fills
    functions = resources(dev_template, "AWS::Lambda::Function")
    ingest = functions[logical_id_of_function(dev_template, "Ingest")]["Properties"]
    # When reading the status function
    status = _status(dev_template)
    # Then it is a separate function with its own reserved executions, so a status request never
    # waits behind a sync, and it runs the status handler under the name scripts/status takes
    assert status["FunctionName"] == "upsell-signals-status-dev"
    assert status["Handler"] == "functions.status.handler.handler"
    assert status["ReservedConcurrentExecutions"] == 2
    assert ingest["ReservedConcurrentExecutions"] == 2
    assert status["Timeout"] <= 60


def test_status_carries_only_the_deps_layer(dev_template: Template) -> None:
    # Given dev's two layers
    layers = resources(dev_template, "AWS::Lambda::LayerVersion")
    deps = [key for key, layer in layers.items() if "Powertools" in layer["Properties"]["Description"]]
    # When reading the status function's layers
    # Then pyarrow is not among them (a faster cold start; the handler imports no pyarrow)
    assert [layer["Ref"] for layer in _status(dev_template)["Layers"]] == deps


def test_status_connects_with_its_own_secret_and_reads_no_other(dev_template: Template) -> None:
    # Given dev
    role_id = _status(dev_template)["Role"]["Fn::GetAtt"][0]
    status_secret_id, _ = only(dev_template, "AWS::SecretsManager::Secret", "StatusSecret")
    # When flattening its role's statements
    statements = role_statements(dev_template, role_id)
    # Then it connects with the status account's secret and may read only that one: not the
    # ingest's or the administrator's, and no S3, SQS or key
    secrets = {resource for action, resource, _ in statements if action.startswith("secretsmanager:")}
    assert secrets == {f"Ref:{status_secret_id}"}
    assert _status(dev_template)["Environment"]["Variables"]["DB_SECRET_ARN"] == {"Ref": status_secret_id}
    assert not [action for action, _, _ in statements if action.split(":")[0] in ("s3", "sqs", "kms")]


def test_status_function_name_is_a_stack_output(dev_template: Template) -> None:
    # Given dev
    # When reading the outputs
    outputs = dev_template.to_json()["Outputs"]
    # Then StatusFunctionName names the status function (what `scripts/status --function` takes)
    assert outputs["StatusFunctionName"]["Value"] == {"Ref": logical_id_of_function(dev_template, "Status")}
