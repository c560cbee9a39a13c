"""The rig tier: these tests run inside ``mdtui rig`` (``make test`` starts them there), on
the simulated machine behind umockdev's /sys, /dev and ioctls.  Outside a rig they refuse to
run rather than skip (tests/conftest.py leaves this folder out of a plain ``pytest``)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator

import pytest

from mdtui.rig.control import send

from ..pythons import oldest_python
from ..sshd import SshServer, rig_env

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
    return send(os.environ["MDTUI_RIG_CONTROL"], line)


def mdtui(*args: str) -> str:
    """``mdtui ARGS`` inside the rig; its output."""
    return subprocess.run([sys.executable, "-m", "mdtui", *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture(autouse=True)
def fresh_machine() -> None:
    """Every test starts on the default world."""
    assert control("reset") == "ok"


@pytest.fixture(scope="session")
def ssh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """A real sshd (tests/sshd.py) whose sessions reach the rig and find Python 3.8, the
    oldest the remote agent supports, as python3."""
    bin_dir = tmp_path_factory.mktemp("bin")
    (bin_dir / "python3").symlink_to(oldest_python())
    with SshServer(session_env=rig_env(), session_path=f"{bin_dir}:/usr/bin:/bin") as srv:
        yield srv


@pytest.fixture
def ssh(ssh_server: SshServer, monkeypatch: pytest.MonkeyPatch) -> SshServer:
    """That server, running (a test may have stopped it), with MDTUI_SSH set to reach it."""
    monkeypatch.setenv("MDTUI_SSH", ssh_server.mdtui_ssh)
    if not ssh_server.running:
        ssh_server.start()
    return ssh_server
