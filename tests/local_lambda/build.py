"""Build what the local Lambda runs, so tests find it ready: `python -m tests.local_lambda.build --env dev`.

The runtime directory (awslambdaric, pinned, for the runtime's Python) and the
stack synthesized for this machine's CPU (function code and layers as the stack packages them).
"""

from __future__ import annotations

import argparse

from tests.local_lambda.artifact import lambda_python, runtime_dir, synthesized


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", default="dev", help="the cdk.json environment whose stack is synthesized")
    arguments = parser.parse_args()
    python = lambda_python()
    print(f"local Lambda: runtime's Python {python}")
    print(f"local Lambda: runtime directory {runtime_dir(python)}")
    print(f"local Lambda: {arguments.env} synthesized for this machine in {synthesized(arguments.env)}")


if __name__ == "__main__":
    main()
