"""The ssh fixture itself (tests/sshd.py), inside the rig: a real sshd whose sessions reach
the rig's simulated machine, that can go away and come back on its port, and whose sessions'
PATH is the test's to choose."""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..sshd import SshServer, rig_env


@pytest.fixture(scope="module")
def server() -> Iterator[SshServer]:
    with SshServer(session_env=rig_env()) as srv:
        yield srv


def python(srv: SshServer, host: str, code: str) -> subprocess.CompletedProcess[str]:
    """``ssh HOST python3 -c CODE``: one argument for the remote shell, quoted for it."""
    return srv.run(host, shlex.join(["python3", "-c", code]))


def test_sessions_get_the_rig_env(server: SshServer) -> None:
    assert " " in os.environ["LD_PRELOAD"]  # the preload library and the rig's shim
    code = "import os; print(os.environ['UMOCKDEV_DIR']); print(os.environ['LD_PRELOAD'])"
    for host in server.hosts:
        result = python(server, host, code)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == [os.environ["UMOCKDEV_DIR"], os.environ["LD_PRELOAD"]]
    # while sshd itself runs off the testbed
    sshd_env = Path(f"/proc/{server.pid}/environ").read_bytes().split(b"\0")
    assert not any(var.startswith(b"LD_PRELOAD=") for var in sshd_env)


def test_sessions_see_the_simulated_machine(server: SshServer) -> None:
    result = python(server, "board-a", "import os; print(sorted(os.listdir('/sys/bus/media/devices')))")
    assert result.returncode == 0, result.stderr
    assert "media0" in result.stdout


def test_setenv_keeps_values_as_they_are(tmp_path: Path) -> None:
    odd = "a b\tc \"d\" 'e' \\f #g $h"
    code = "import os; print(repr(os.environ['ODD'])); print(os.environ['PATH'])"
    with SshServer(session_env={"ODD": odd}, session_path=f"{tmp_path}:/usr/bin:/bin") as srv:
        result = python(srv, "board-a", code)
    assert result.returncode == 0, result.stderr
    # the login shell (root's ~/.bashrc here prepends pyenv's folders) leaves PATH alone
    assert result.stdout.splitlines() == [repr(odd), f"{tmp_path}:/usr/bin:/bin"]


def test_stop_refuses_and_start_comes_back_on_the_same_port() -> None:
    with SshServer() as srv:
        port = srv.port
        held = subprocess.Popen([*srv.ssh_command, "board-a", "sleep 30"], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        _wait_for_session(srv)
        srv.stop()  # the host goes away: its established connections with it
        assert held.wait(5) == 255, held.stderr.read() if held.stderr else ""
        refused = srv.run("board-a", "true")
        assert refused.returncode == 255
        assert "Connection refused" in refused.stderr
        srv.start()
        assert srv.port == port
        assert srv.run("board-b", "true").returncode == 0

        # a restart of sshd alone leaves the established sessions alive, until dropped
        held = subprocess.Popen([*srv.ssh_command, "board-a", "sleep 30"], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_for_session(srv)
        srv.stop(keep_sessions=True)
        srv.start()
        time.sleep(0.2)
        assert held.poll() is None
        srv.drop_sessions()
        assert held.wait(5) == 255
        assert srv.run("board-a", "true").returncode == 0


def test_session_path_chooses_python3(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    with SshServer(session_path=bin_dir) as srv:
        missing = srv.run("board-a", "python3", "-V")
        assert missing.returncode == 127, missing.stderr
        (bin_dir / "python3").symlink_to("/usr/bin/python3")
        found = srv.run("board-a", "command -v python3 && python3 -c 'print(42)'")
        assert found.returncode == 0, found.stderr
        assert found.stdout.split() == [str(bin_dir / "python3"), "42"]


def _wait_for_session(srv: SshServer, timeout: float = 5) -> None:
    """Until sshd runs the ``sleep`` of a session."""
    deadline = time.monotonic() + timeout
    while not any(_cmdline(pid).startswith("sleep") for pid in srv.session_pids()):
        if time.monotonic() > deadline:
            raise AssertionError(f"no session started; sshd's log:\n{srv.log}")
        time.sleep(0.01)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    except OSError:
        return ""
