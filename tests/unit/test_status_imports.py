"""The status function starts without pyarrow: it runs without the pyarrow layer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

# Imports the handler with pyarrow made unimportable, as in a function with the deps layer only.
WITHOUT_PYARROW = """
import sys
class NoPyarrow:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "pyarrow":
            raise ImportError("pyarrow is not in the status function's layers")
sys.meta_path.insert(0, NoPyarrow())
import functions.status.handler
print(sorted(name for name in sys.modules if name.split(".")[0] in ("pyarrow", "aws_xray_sdk")))
"""


def test_the_status_handler_imports_without_pyarrow() -> None:
    # Given an interpreter where pyarrow cannot be imported
    # When the status function's handler module is imported
    completed = subprocess.run(
        [sys.executable, "-c", WITHOUT_PYARROW], cwd=REPO_ROOT, capture_output=True, text=True, check=False, timeout=120
    )
    # Then it imports, and neither pyarrow nor the X-Ray SDK was loaded
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "[]"
