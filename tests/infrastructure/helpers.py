"""Reading synthesized templates: resources by type, statements flattened, references by logical id."""

from __future__ import annotations

from typing import Any

from aws_cdk.assertions import Template


def resources(template: Template, resource_type: str) -> dict[str, dict[str, Any]]:
    return {key: dict(value) for key, value in template.find_resources(resource_type).items()}


def only(template: Template, resource_type: str, name_part: str = "") -> tuple[str, dict[str, Any]]:
    """The one resource of a type (whose logical id contains name_part); fails when not exactly one."""
    found = {key: value for key, value in resources(template, resource_type).items() if name_part in key}
    assert len(found) == 1, f"expected one {resource_type} matching {name_part!r}, found {sorted(found)}"
    return next(iter(found.items()))


def logical_id_of_function(template: Template, name_part: str) -> str:
    found = [key for key in resources(template, "AWS::Lambda::Function") if key.startswith(name_part) and "Function" in key]
    assert len(found) == 1, found
    return found[0]


def role_statements(template: Template, role_logical_id: str) -> list[tuple[str, str, Any]]:
    """(action, resource, condition) for every statement of every policy attached to a role."""
    flattened: list[tuple[str, str, Any]] = []
    for policy in resources(template, "AWS::IAM::Policy").values():
        properties = policy["Properties"]
        if {"Ref": role_logical_id} not in properties.get("Roles", []):
            continue
        for statement in properties["PolicyDocument"]["Statement"]:
            assert statement["Effect"] == "Allow"
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            targets = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            for action in actions:
                for target in targets:
                    flattened.append((action, _render(target), statement.get("Condition")))
    return flattened


def _render(value: Any) -> str:
    """A resource reference as short text: "*", "Ref:X", "GetAtt:X.Arn", "Join:..." for comparison."""
    if isinstance(value, str):
        return value
    if "Ref" in value:
        return f"Ref:{value['Ref']}"
    if "Fn::GetAtt" in value:
        return f"GetAtt:{'.'.join(value['Fn::GetAtt'])}"
    if "Fn::Join" in value:
        return "Join:" + "".join(_render(part) for part in value["Fn::Join"][1])
    return repr(value)
