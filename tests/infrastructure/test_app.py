"""app.py as the cdk CLI or `make synth` runs it: context from -c, a clear message for a bad environment."""

from __future__ import annotations

import pytest

import app


def test_context_pairs_are_read_from_the_command_line() -> None:
    # Given the arguments `make synth` passes
    argv = ["-c", "env=prod", "-o", "build/cdk.out/prod", "--context", "extra=1"]
    # When reading the context
    # Then both spellings are understood and other options are ignored
    assert app.context_from_argv(argv) == {"env": "prod", "extra": "1"}


def test_unknown_environment_exits_with_the_known_names(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given an environment cdk.json does not define
    monkeypatch.setattr("sys.argv", ["app.py", "-c", "env=qa"])
    monkeypatch.delenv("CDK_OUTDIR", raising=False)
    # When the app runs
    # Then it stops before synthesizing, naming the problem and the known environments
    with pytest.raises(SystemExit, match=r"cdk.json: unknown environment 'qa'; known: dev, prod, staging"):
        app.main()
