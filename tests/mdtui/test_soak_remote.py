"""``mdtui soak --source ssh:HOST`` without a network or a rig: the agent run here on Python
3.8 through a stand-in for ssh (a program that runs the remote command line with ``sh -c``),
answering ``machine`` calls.  What it refuses, a refusal of the target coming back as the
target's ``OSError``, and the command line's ssh errors.  The soak itself over a real OpenSSH
server, on the rig: tests/rig/test_ssh_soak.py."""

from __future__ import annotations

import errno
import io
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mdtui.cli import main
from mdtui.soak.remote import RemoteMachine
from mdtui.sources.remote import RemoteSource

from ..pythons import oldest_python

FAST = (0.05, 0.2)  # reconnect backoff: first, most


def stand_in(tmp_path: Path, prefix: str = "") -> list[str]:
    """A program standing in for ssh: runs its last argument (the remote command) with
    ``sh -c``, after ``prefix`` (variables for the agent)."""
    path = tmp_path / "fake-ssh"
    path.write_text(f'#!/bin/sh\nfor last; do :; done\n{prefix}exec sh -c "$last"\n')
    path.chmod(0o755)
    return [str(path)]


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[RemoteSource]:
    source = RemoteSource("board-a", ssh=stand_in(tmp_path), python=oldest_python(), backoff=FAST)
    try:
        assert source.ready(30) == []
        yield source
    finally:
        source.stop()


@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("no_such_method", []),
        ("_control", ["rmmod au0828"]),  # LiveMachine's, not the Machine interface's
        ("_tool", [["rm", "-rf", "/"]]),
        ("__init__", []),
        ("source", []),  # an attribute, not a method
        ("rig", []),
        (None, []),
        (["snapshot"], []),  # not even a name
        ("snapshot", "not a list"),
    ],
)
def test_the_agent_calls_the_machine_interface_only(agent: RemoteSource, method: object, args: object) -> None:
    with pytest.raises(OSError) as refused:
        agent.call("machine", method=method, args=args)
    assert refused.value.errno == errno.EINVAL
    assert "no such machine call" in str(refused.value.strerror)


def test_a_read_only_agent_drives_no_machine(tmp_path: Path) -> None:
    source = RemoteSource("board-a", ssh=stand_in(tmp_path), python=oldest_python(), read_only=True, backoff=FAST)
    try:
        assert source.ready(30) == []
        with pytest.raises(OSError) as refused:
            source.call("machine", method="describe", args=[])
        assert refused.value.errno == errno.EROFS
    finally:
        source.stop()


class FakeRig:
    """A rig control socket that refuses every line as the rig refuses an rmmod of a module in
    use (mdtui/rig/control.py's answer), and notes the lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: list[str] = []
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(str(path))
        self.sock.listen()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn, conn.makefile("rw") as f:
                self.lines.append(f.readline().strip())
                f.write("error 16 EBUSY rmmod: ERROR: Module au0828 is in use\n")


def test_a_refusal_of_the_target_is_its_oserror(tmp_path: Path) -> None:
    """The target's LiveMachine (here told it is in a rig, whose control socket refuses)
    raises; the RemoteMachine raises the same errno and text."""
    if not os.access("/dev/kmsg", os.R_OK):
        pytest.fail("/dev/kmsg cannot be read here: the target's LiveMachine needs it")
    rig = FakeRig(tmp_path / "control")
    ssh = stand_in(tmp_path, f"MDTUI_RIG_CONTROL={rig.path} ")
    source = RemoteSource("board-a", ssh=ssh, python=oldest_python(), backoff=FAST)
    try:
        assert source.ready(30) == []
        machine = RemoteMachine(source)
        assert (machine.source, machine.rig, machine.real) == ("ssh:board-a (rig)", True, False)
        assert machine.kernel == "board-a, the rig (the simulated kernel behind umockdev)"
        with pytest.raises(OSError) as busy:
            machine.rmmod("au0828")
        assert busy.value.errno == errno.EBUSY and busy.value.strerror == "rmmod: ERROR: Module au0828 is in use"
        assert rig.lines == ["rmmod au0828"]
        with pytest.raises(OSError) as gone:  # an open's errno and file, as the target's os.open raised them
            machine.open(str(tmp_path / "no-such-node"), "test")
        assert (gone.value.errno, gone.value.filename) == (errno.ENOENT, str(tmp_path / "no-such-node"))
        for call in (lambda: machine.artifact(0, OSError(errno.ENOTTY, "x")), lambda: machine.close(0)):
            with pytest.raises(OSError) as theirs:  # the agent's own input is no file of the soak's
                call()
            assert theirs.value.errno == errno.EBADF and "not a file the soak opened here" in theirs.value.strerror
        with pytest.raises(OSError) as path:
            machine.unplug("../../../../proc/sys")
        assert path.value.errno == errno.EINVAL and "a name, not a path" in path.value.strerror
        with pytest.raises(OSError) as bad:
            source.call("machine", method="bind", args=["au0828"])  # one argument short
        assert bad.value.errno == errno.EINVAL
    finally:
        source.stop()
        rig.sock.close()


def test_soak_over_ssh_says_an_unreachable_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = tmp_path / "fake-ssh"
    fake.write_text('#!/bin/sh\necho "ssh: connect to host board-a port 22: Connection refused" >&2\nexit 255\n')
    fake.chmod(0o755)
    monkeypatch.setenv("MDTUI_SSH", str(fake))
    out = io.StringIO()
    assert main(["soak", "--source", "ssh:board-a", "--yes"], stdout=out) == 1
    assert out.getvalue() == ""
    assert capsys.readouterr().err.splitlines() == [
        "mdtui soak: board-a: host unreachable (ssh: connect to host board-a port 22: Connection refused)"
    ]


@pytest.mark.parametrize("target", ["ssh:", "ssh:-oProxyCommand=x", "ssh:host:99999", "board-a"])
def test_a_bad_source_is_a_usage_error(target: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as usage:
        main(["soak", "--source", target])
    assert usage.value.code == 2
    assert "--source" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "why"),
    [
        (["--race-window", "5"], "--race-window widens a window inside the simulated kernel"),
        (["--read-only"], "--read-only: the soak binds and unbinds drivers"),
    ],
)
def test_ssh_refuses_what_live_refuses(option: list[str], why: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["soak", "--source", "ssh:board-a", *option], stdout=io.StringIO()) == 2
    assert why in capsys.readouterr().err
