"""Run a script with the project's virtualenv, whatever `python3` the shell found (stdlib only).

`./scripts/status` starts under the system python3 (its #! line), which lacks pyarrow and
the rest: re-executing with .venv/bin/python finds them. Imported before anything else.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
VENV = REPO_ROOT / ".venv"


def use_project_venv(script: str) -> None:
    """Re-exec `script` with .venv/bin/python unless this already is that interpreter; exit clearly without one."""
    venv_python = VENV / "bin" / "python"
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    if not venv_python.exists():
        sys.exit(f"{Path(script).name}: no virtualenv at {VENV}: run `make demo` or `make venv` first")
    os.execv(venv_python, [str(venv_python), script, *sys.argv[1:]])
