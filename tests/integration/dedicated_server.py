"""A throwaway MariaDB server of one test's own, that can be killed hard, paused and started again on its data."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parents[2]

# The suite's own server's settings (scripts/with-mariadb), sized for one test.
TEST_SERVER_OPTIONS = (
    "--character-set-server=utf8mb4",
    "--collation-server=utf8mb4_unicode_ci",
    "--innodb-buffer-pool-size=256M",
    "--innodb-log-file-size=64M",
    "--max-allowed-packet=64M",
)


def _load_with_mariadb() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("scripts_with_mariadb", str(REPO_ROOT / "scripts" / "with-mariadb"))
    spec = importlib.util.spec_from_loader("scripts_with_mariadb", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


class DedicatedServer:
    """A throwaway MariaDB of this test's own, that can be killed hard and started again on its data."""

    def __init__(self, base: Path, options: Sequence[str] = TEST_SERVER_OPTIONS) -> None:
        self._options = tuple(options)
        self._scripts = _load_with_mariadb()
        self._base = base
        self._user_args = ["--user=root"] if os.geteuid() == 0 else []
        self.port = self._scripts.free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._scripts.initialise_datadir(base / "data", self._user_args)

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self._scripts.find_binary("mariadbd"),
                "--no-defaults",
                f"--datadir={self._base / 'data'}",
                f"--socket={self._base / 'mariadb.sock'}",
                f"--pid-file={self._base / 'mariadb.pid'}",
                f"--log-error={self._base / 'server.log'}",
                f"--tmpdir={self._base}",
                "--bind-address=127.0.0.1",
                f"--port={self.port}",
                "--local-infile=1",
                "--skip-name-resolve",
                *self._options,
                *self._user_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._scripts.wait_until_ready(self.port, self.process, self._base / "server.log")

    def kill_hard(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=60)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill_hard()

    def pause(self) -> None:
        """SIGSTOP: the server holds every socket open and answers nothing, as a hung instance does."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)
