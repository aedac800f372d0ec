"""Every AWS call the functions make in realistic runs is allowed by that function's role, in dev and prod.

Checked: each botocore call the ingest, status and migrate handlers make (recorded in-process, on moto
and the test MariaDB) needs the IAM action(s) ACTIONS names, and a statement of the function's role in
the synthesized template grants each on a resource of the call's shape. moto's concrete names are
turned into the template's terms through the function's environment variables: a name the run got
from a variable becomes that variable's value in the template (`Ref:<logical id>` of the bucket, queue
or secret, or the literal an environment imports), an S3 key is appended to the bucket's ARN, and the
statement's resource (a Join rendered as text, `*` as IAM's wildcard) must match it: the same logical
id, the same key prefix. A call whose resource no variable gives, or an operation ACTIONS lacks, fails.
Not checked: conditions (kms:ViaService), KMS grants a key policy gives, SCPs, resource policies, and
calls these runs do not make (the durable SDK's, made only on Lambda, are in ACTIONS but not recorded).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_cdk.assertions import Template
from botocore.client import BaseClient
from moto import mock_aws

from functions.ingest import handler as ingest
from functions.migrate import handler as migrate
from functions.shared.aws import secrets_provider
from functions.shared.settings import DatabaseSettings
from functions.status import handler as status
from tests.infrastructure.conftest import arm64_layers, synthesize  # noqa: F401 - fixtures
from tests.infrastructure.helpers import _render, logical_id_of_function, resources, role_statements
from tests.integration.test_handler import BUCKET, KEY, Aws
from tests.integration.test_migrate_handler import provider_request
from tests.integration.test_secrets import account_secret
from tests.scripts_support import LocalContext

# Operation -> the IAM actions it needs (Service Authorization Reference). HeadObject is authorised as s3:GetObject.
ACTIONS: dict[tuple[str, str], tuple[str, ...]] = {
    ("s3", "HeadObject"): ("s3:GetObject",),
    ("s3", "GetObject"): ("s3:GetObject",),
    ("secretsmanager", "GetSecretValue"): ("secretsmanager:GetSecretValue",),
    ("sqs", "SendMessage"): ("sqs:SendMessage",),
    ("lambda", "CheckpointDurableExecution"): ("lambda:CheckpointDurableExecution",),
    ("lambda", "GetDurableExecutionState"): ("lambda:GetDurableExecutionState",),
}
RESOURCE_PARAMETERS = ("Bucket", "Key", "SecretId", "QueueUrl", "DurableExecutionArn")
FUNCTIONS = {"ingest": "Ingest", "status": "Status", "migrate": "Migrations"}  # logical id prefixes in the stack


@dataclass(frozen=True)
class Call:
    function: str
    service: str  # the signing name, as IAM's action prefix
    operation: str
    params: tuple[tuple[str, str], ...]


class Recorder:
    """Every botocore API call made while `running(function)`; the environment each function ran with."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: set[Call] = set()
        self.environments: dict[str, dict[str, str]] = {}
        self._monkeypatch, self._function = monkeypatch, ""
        original = BaseClient._make_api_call

        def recording(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
            if self._function:
                named = tuple((key, str(params[key])) for key in RESOURCE_PARAMETERS if key in params)
                self.calls.add(Call(self._function, client.meta.service_model.signing_name, operation, named))
            return original(client, operation, params)

        monkeypatch.setattr(BaseClient, "_make_api_call", recording)

    @contextmanager
    def running(self, function: str, **env: str) -> Iterator[None]:
        for name, value in env.items():
            self._monkeypatch.setenv(name, value)
        self.environments[function] = dict(os.environ)
        self._function = function
        # Each function runs in a process of its own: no secret another one read is cached in it.
        secrets_provider.cache_clear()
        try:
            yield
        finally:
            self._function = ""


@pytest.fixture
def deployed(database_settings: DatabaseSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    """An empty database, moto's bucket and dead-letter queue; the database reached only through secrets, as deployed."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    for name in ("DB_HOST", "DB_USER", "DB_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    secrets_provider.cache_clear()
    ingest.build_app.cache_clear()
    with mock_aws():
        stand_in = Aws(tmp_path)
        monkeypatch.setenv("SIGNALS_BUCKET", BUCKET)
        monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", stand_in.queue_url)
        monkeypatch.setenv("WORK_DIR", str(tmp_path))
        yield stand_in
    secrets_provider.cache_clear()
    ingest.build_app.cache_clear()


def record_a_deploy_and_a_day(aws: Aws, settings: DatabaseSettings, recorder: Recorder) -> None:
    """Migrate on Create with its three secrets, two ingest dates (synced, missing) and a status request, the status function."""
    client = boto3.client("secretsmanager", region_name="eu-west-1")
    admin, ingest_secret, status_secret = (
        client.create_secret(Name=f"{account}-{uuid.uuid4().hex[:8]}", SecretString=json.dumps(secret))["ARN"]
        for account, secret in (
            ("admin", account_secret(settings, str(settings.password), str(settings.user))),
            *((account, account_secret(settings, uuid.uuid4().hex, account)) for account in ("upsell_ingest", "upsell_status")),
        )
    )
    with recorder.running("migrate", DB_SECRET_ARN=admin, INGEST_DB_SECRET_ARN=ingest_secret, STATUS_DB_SECRET_ARN=status_secret):
        assert migrate.handler(provider_request("Create"), LocalContext("migrate"))["Data"]["Applied"]
    aws.put_file(KEY)
    with recorder.running("ingest", DB_SECRET_ARN=ingest_secret):
        assert ingest.handler({"sync_date": "2026-01-30"}, LocalContext("ingest"))["status"] == "completed"
        missing = ingest.handler({"sync_date": "2026-01-29"}, LocalContext("ingest"))
        assert missing["status"] == "failed" and missing["dead_letter_message_id"]
        assert ingest.handler({"action": "status"}, LocalContext("ingest"))["action"] == "status"
    with recorder.running("status", DB_SECRET_ARN=status_secret):
        assert status.handler({"action": "status"}, LocalContext("status"))["action"] == "status"


# -- the template's side ---------------------------------------------------------------


@dataclass(frozen=True)
class DeployedFunction:
    name: str  # FunctionName
    environment: dict[str, str]  # variable -> its template value as text ("Ref:<id>" or a literal)
    statements: list[tuple[str, str, Any]]  # the role's (action, resource, condition)


def deployed_function(template: Template, prefix: str) -> DeployedFunction:
    properties = resources(template, "AWS::Lambda::Function")[logical_id_of_function(template, prefix)]["Properties"]
    variables = properties.get("Environment", {}).get("Variables", {})
    role = properties["Role"]["Fn::GetAtt"][0]
    return DeployedFunction(
        str(properties.get("FunctionName")),
        {name: _render(value) for name, value in variables.items()},
        role_statements(template, role),
    )


def _arn(reference: str, literal_arn: Callable[[str], str]) -> str:
    """A bucket's or queue's ARN from its variable's template value (a Ref gives the name or URL, GetAtt Arn the ARN)."""
    return f"GetAtt:{reference.removeprefix('Ref:')}.Arn" if reference.startswith("Ref:") else literal_arn(reference)


def resource_of(call: Call, names: dict[str, str]) -> str:
    """The call's resource in the template's terms; KeyError names a resource no environment variable gave."""
    params = dict(call.params)
    if "Bucket" in params:
        return f"{_arn(names[params['Bucket']], lambda bucket: f'arn:aws:s3:::{bucket}')}/{params['Key']}"
    if "SecretId" in params:
        return names[params["SecretId"]]  # Ref of a secret (or of its attachment) is its ARN
    if "QueueUrl" in params:
        return _arn(names[params["QueueUrl"]], lambda url: "arn:aws:sqs:{}:{}:{}".format(*url.split("/")[2:5]))
    if "DurableExecutionArn" in params:  # lambda:<region>:<account>:function:<name>:<qualifier>/durable-execution/...
        return "function:" + params["DurableExecutionArn"].split("/")[0].split(":function:")[1]
    raise KeyError(f"no resource parameter in {params}")


def grants(statements: list[tuple[str, str, Any]], action: str, resource: str) -> bool:
    """Whether a statement allows `action` on `resource` (IAM wildcards; a durable call's by its function part)."""
    for granted_action, pattern, _condition in statements:
        if resource.startswith("function:"):
            pattern = pattern[pattern.find(":function:") + 1 :]
        if fnmatchcase(action.lower(), granted_action.lower()) and fnmatchcase(resource, pattern.removeprefix("Join:")):
            return True
    return False


def refusals(calls: set[Call], environments: dict[str, dict[str, str]], template: Template) -> list[str]:
    problems = []
    for call in sorted(calls, key=repr):
        function = deployed_function(template, FUNCTIONS[call.function])
        actions = ACTIONS.get((call.service, call.operation))
        if actions is None:
            problems.append(
                f"{call.function} calls {call.service} {call.operation}: add it to ACTIONS with the IAM action(s) "
                "it needs, and grant them to the function's role in infra/constructs"
            )
            continue
        ran_with = environments[call.function]
        names = {ran_with[name]: value for name, value in function.environment.items() if name in ran_with}
        try:
            resource = resource_of(call, names)
        except KeyError:
            problems.append(
                f"{call.function}: {call.operation} {dict(call.params)} names a resource no environment variable of {function.name} gives"
            )
            continue
        for action in actions:
            if not grants(function.statements, action, resource):
                granted = sorted({pattern for granted, pattern, _ in function.statements if granted == action})
                problems.append(
                    f"{function.name} ({call.function}) calls {call.service} {call.operation} on {resource} "
                    f"but its role grants {action} on {granted or 'nothing'}"
                )
    return problems


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_each_functions_role_allows_every_call_it_makes(
    deployed: Aws,
    database_settings: DatabaseSettings,
    synthesize: Callable[[str], Template],  # noqa: F811 - the fixture
    monkeypatch: pytest.MonkeyPatch,
    environment: str,
) -> None:
    # Given the stack synthesized for the environment, and every AWS call of a deploy's migration,
    # a day of the ingest and a status report recorded
    template = synthesize(environment)
    recorder = Recorder(monkeypatch)
    record_a_deploy_and_a_day(deployed, database_settings, recorder)
    made = {f"{call.function} {call.service}:{call.operation}" for call in recorder.calls}
    assert {
        "ingest s3:HeadObject",
        "ingest s3:GetObject",
        "ingest sqs:SendMessage",
        "status secretsmanager:GetSecretValue",
    } <= made
    # When each call is held against its function's role
    problems = refusals(recorder.calls, recorder.environments, template)
    # Then each is allowed, on a resource of its shape
    assert not problems, "\n".join([f"{environment}: {len(problems)} call(s) the role would refuse:", *problems])
