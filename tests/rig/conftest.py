"""The rig tier: these tests run inside ``mdtui rig`` (``make test`` starts them there), on
the simulated machine behind umockdev's /sys, /dev and ioctls.  Outside a rig they refuse to
run rather than skip (tests/conftest.py leaves this folder out of a plain ``pytest``)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections import Counter

import pytest

if "MDTUI_RIG_CONTROL" not in os.environ:
    pytest.exit("tests/rig runs inside the rig: .venv/bin/mdtui rig -- .venv/bin/python -m pytest tests/rig", 4)


#: cases run by the hostile-client suite (tests/rig/test_hostile.py), by kind: printed at the
#: end of the run, so the figure can be recorded
CASES: Counter[str] = Counter()
#: v4l2-compliance's totals, a line per run (tests/rig/test_compliance.py), printed at the end
COMPLIANCE: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if COMPLIANCE:
        terminalreporter.write_line(f"v4l2-compliance -M, {len(COMPLIANCE)} runs:")
        for line in COMPLIANCE:
            terminalreporter.write_line(f"  {line}")
    if CASES:
        kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(CASES.items()))
        terminalreporter.write_line(f"hostile-client cases run: {sum(CASES.values())} ({kinds})")


def control(line: str) -> str:
    """One line to the rig (a lifecycle step, or ``reset``); its answer."""
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(os.environ["MDTUI_RIG_CONTROL"])
        s.sendall(line.encode() + b"\n")
        with s.makefile() as reply:
            return reply.readline().strip()


def mdtui(*args: str) -> str:
    """``mdtui ARGS`` inside the rig; its output."""
    return subprocess.run([sys.executable, "-m", "mdtui", *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture(autouse=True)
def fresh_machine() -> None:
    """Every test starts on the default world."""
    assert control("reset") == "ok"
