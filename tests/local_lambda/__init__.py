"""A local Lambda as harsh as the real one: the deployment artifact on the runtime's Python under awslambdaric.

artifact.py builds what runs (synthesized assets, the runtime directory); runtime_api.py is the
Runtime API the client talks to; environment.py is one runtime process, killed at its timeout and
memory size; service.py invokes it synchronously or through Lambda's asynchronous retries and
on-failure record; durable.py runs a durable function's executions on it, with the durable
execution testing SDK's service on loopback. docs/local-lambda.md says what it reproduces and what it does not.
"""

from tests.local_lambda.artifact import FunctionSpec, Template, lambda_python, runtime_dir, synthesized
from tests.local_lambda.durable import DurableEvent, DurableFunction
from tests.local_lambda.environment import InvocationResult
from tests.local_lambda.service import AsyncEvent, LocalLambda

__all__ = [
    "AsyncEvent",
    "DurableEvent",
    "DurableFunction",
    "FunctionSpec",
    "InvocationResult",
    "LocalLambda",
    "Template",
    "lambda_python",
    "runtime_dir",
    "synthesized",
]
