"""The layers point down: ``allocator`` imports nothing of mdtui, and this tier of tests
runs without Textual (each checked in a fresh interpreter)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

IMPORT_ALL = """
import importlib, pkgutil, sys
import {package} as top
for info in pkgutil.walk_packages(top.__path__, top.__name__ + "."):
    importlib.import_module(info.name)
print(" ".join(sorted(m for m in sys.modules if m.split(".")[0] in ("textual", "mdtui"))))
"""


def loaded(package: str) -> set[str]:
    """The Textual and mdtui modules importing every module of ``package`` loads."""
    code = IMPORT_ALL.format(package=package)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_the_allocator_imports_nothing_of_mdtui() -> None:
    assert loaded("allocator") == set()


def test_the_allocator_tier_runs_without_textual() -> None:
    assert not {m for m in loaded("tests.allocator") if m.split(".")[0] == "textual"}
