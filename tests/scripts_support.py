"""Lets tests use the same Lambda context stand-in as ./scripts/invoke."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

INVOKE_PATH = Path(__file__).resolve().parents[1] / "scripts" / "invoke"


def _load_invoke() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("scripts_invoke", str(INVOKE_PATH))
    spec = importlib.util.spec_from_loader("scripts_invoke", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["scripts_invoke"] = module  # dataclasses look their module up there
    loader.exec_module(module)
    return module


_invoke = _load_invoke()
LocalContext = _invoke.LocalContext
