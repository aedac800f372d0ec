"""./scripts as an operator types them in a fresh clone: only what git tracks, the system's python3 on PATH.

The clone is of the committed HEAD (what CI and a new engineer get), so an untracked helper, a
lost executable bit or an import reaching outside the checkout fails here. Building the clone's
virtualenv (`make venv`: pip install of the pinned requirements) needs the network and minutes,
so the test gives the clone the suite's own virtualenv by symlink, as `.venv` where `make venv`
puts it: what it proves is that the scripts find `.venv` beside them and re-execute with it from
a plain shell, not that pip can install the requirements.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from functions.shared.settings import DatabaseSettings
from tests.integration.conftest import REPO_ROOT

PLAIN_PATH = "/usr/local/bin:/usr/bin:/bin"  # no virtualenv on it: python3 is the system's


@pytest.fixture
def fresh_clone(tmp_path: Path) -> Iterator[Path]:
    if shutil.which("git") is None:
        pytest.fail("git is needed to clone the repository")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(clone)], check=True, capture_output=True, timeout=120)
    yield clone


def typed(clone: Path, *command: str, env: dict[str, str] | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command in the clone from a shell that has only the system's PATH (and `env`)."""
    return subprocess.run(
        list(command),
        cwd=clone,
        env={"PATH": PLAIN_PATH, "HOME": str(clone), **(env or {})},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_scripts_run_as_typed_in_a_fresh_clone_with_the_venv_where_make_puts_it(
    fresh_clone: Path, migrated_settings: DatabaseSettings
) -> None:
    # Given a fresh clone: without a virtualenv the scripts say what to run, rather than a traceback
    missing = typed(fresh_clone, "./scripts/status", "--help")
    assert missing.returncode != 0 and "run `make demo` or `make venv` first" in missing.stderr, missing

    # When the virtualenv is where `make venv` creates it, and the operator types the scripts
    (fresh_clone / ".venv").symlink_to(Path(sys.prefix))
    status_help = typed(fresh_clone, "./scripts/status", "--help")
    invoke_help = typed(fresh_clone, "./scripts/invoke", "--help")
    database = {
        "DB_HOST": str(migrated_settings.host),
        "DB_PORT": str(migrated_settings.port),
        "DB_USER": str(migrated_settings.user),
        "DB_PASSWORD": migrated_settings.password or "",
        "DB_NAME": migrated_settings.name,
    }
    status = typed(fresh_clone, "./scripts/status", "--json", env=database)
    asked = typed(fresh_clone, "./scripts/invoke", "status", "-", env=database, stdin='{"action": "status"}')

    # Then each runs under the project's packages and answers
    assert status_help.returncode == 0 and status_help.stdout.startswith("usage: status"), status_help
    assert invoke_help.returncode == 0 and "{ingest,migrate,status} EVENT_FILE" in invoke_help.stdout, invoke_help
    assert status.returncode == 0 and '"syncs": []' in status.stdout, status
    assert asked.returncode == 0 and '"syncs": []' in asked.stdout, asked
