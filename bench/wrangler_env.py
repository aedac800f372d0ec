"""The benchmark's separate venv for awswrangler (build/bench-venv), built on demand.

awswrangler 3.17.1 declares pyarrow<26 while the functions pin pyarrow 26, so it lives in
its own venv that only the benchmark's awswrangler worker runs in. A stamp of the
requirements' hash skips the install when nothing changed.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REQUIREMENTS = BENCH_DIR / "requirements-awswrangler.txt"
INSTALL_TIMEOUT_SECONDS = 900


def ensure_venv(venv_dir: Path) -> tuple[Path | None, str | None]:
    """(python of the venv, None) when usable, or (None, the reason it is not)."""
    python = venv_dir / "bin" / "python"
    stamp = venv_dir / ".requirements.sha256"
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    try:
        if not (python.exists() and stamp.exists() and stamp.read_text().strip() == wanted):
            print(f"bench: installing awswrangler into {venv_dir} (separate from the functions' venv) ...", flush=True)
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv_dir)], check=True, capture_output=True, text=True)
            subprocess.run(
                [
                    str(python),
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "--no-deps",
                    "-r",
                    str(REQUIREMENTS),
                ],
                check=True,
                capture_output=True,
                text=True,
                timeout=INSTALL_TIMEOUT_SECONDS,
            )
            stamp.write_text(wanted + "\n")
        subprocess.run(
            [str(python), "-c", "import awswrangler, pandas, pymysql, pyarrow"],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )
    except subprocess.CalledProcessError as error:
        detail = (error.stderr or error.stdout or "").strip().splitlines()
        return None, f"{' '.join(map(str, error.cmd[:4]))} ... failed: {detail[-1] if detail else error.returncode}"
    except (OSError, subprocess.TimeoutExpired) as error:
        return None, f"could not build {venv_dir}: {error}"
    return python, None
