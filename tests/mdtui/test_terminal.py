"""The TUI in a real pseudo-terminal: it ends with its terminal, on SIGHUP and SIGTERM,
and a crash exits non-zero saying where the traceback went."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from mdtui.terminal import EXIT_HANGUP, EXIT_TERMINATED
from tests.ptyterm import PtyTerminal

#: a crash injected into the child: the help key raises
CRASHING = (
    "import sys; from mdtui import cli; from mdtui.app import MdtuiApp\n"
    "def broken(self): raise RuntimeError('injected by the test')\n"
    "MdtuiApp.action_help = broken\n"
    "sys.exit(cli.main(['--source', 'sim']))\n"
)


def Terminal(
    tmp_path: Path, code: str = "import sys; from mdtui import cli; sys.exit(cli.main(['--source', 'sim']))"
) -> PtyTerminal:
    """This Python running ``code`` on a pseudo-terminal of 30x100."""
    return PtyTerminal([sys.executable, "-c", code], dict(os.environ, XDG_STATE_HOME=str(tmp_path)))


def test_the_tui_ends_when_its_terminal_goes_away(tmp_path: Path) -> None:
    term = Terminal(tmp_path)
    term.wait_for(b"HVR-950Q")
    started = time.monotonic()
    term.hang_up()
    assert term.finish() == EXIT_HANGUP
    assert time.monotonic() - started < 3


def test_the_tui_ends_after_a_hangup_followed_by_sigcont(tmp_path: Path) -> None:
    """What the kernel does at a hangup: SIGHUP, then SIGCONT, on which Textual restarts its
    output to the dead terminal (its shutdown could then block for good)."""
    term = Terminal(tmp_path)
    term.wait_for(b"HVR-950Q")
    term.hang_up()
    term.child.send_signal(signal.SIGHUP)
    term.child.send_signal(signal.SIGCONT)
    assert term.finish(timeout=10) == EXIT_HANGUP


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGHUP, EXIT_HANGUP), (signal.SIGTERM, EXIT_TERMINATED)])
def test_sighup_and_sigterm_end_the_tui(tmp_path: Path, signum: int, status: int) -> None:
    term = Terminal(tmp_path)
    term.wait_for(b"HVR-950Q")
    term.child.send_signal(signum)
    assert term.finish() == status
    term.hang_up()


def test_a_crash_exits_1_and_says_where_the_traceback_is(tmp_path: Path) -> None:
    term = Terminal(tmp_path, CRASHING)
    term.wait_for(b"HVR-950Q")
    term.type(b"?")
    assert term.finish() == 1
    time.sleep(0.2)  # the last output still on its way through the pty
    [report] = (tmp_path / "mdtui").glob("crash-*.txt")
    assert "RuntimeError: injected by the test" in report.read_text()
    assert f"mdtui: crashed; the traceback is above and in {report}".encode() in bytes(term.output).replace(
        b"\r\n", b""
    )
    term.hang_up()
