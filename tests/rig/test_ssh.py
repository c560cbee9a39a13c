"""``--source ssh:HOST`` against a real OpenSSH server (tests/sshd.py) whose sessions reach
the rig: the agent runs there on Python 3.8 (the oldest it supports), from the source that
mdtui pipes to it.  The remote side therefore has the rig's devices, and what mdtui shows
through ssh must be what it shows when it reads the rig itself."""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot

from mdtui.app import MdtuiApp
from mdtui.scenarios import settle
from mdtui.sources.multi import MultiSource
from mdtui.sources.remote import RemoteSource
from mdtui.sources.sim import fake_clock
from mdtui.step import Step

from ..sshd import SshServer, rig_env
from .conftest import control

FAST = (0.1, 0.5)  # reconnect backoff in these tests: first, most


def mdtui(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mdtui", *args], capture_output=True, text=True, timeout=60)


def until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _hidden(line: str) -> str:
    """A line without its count of processes hidden from the reader: the agent runs in an ssh
    session, which may inspect pid 1 here; this test's own process may not (it lacks one of
    pid 1's capabilities), so the two counts differ for a reason that is not mdtui's."""
    return re.sub(r"^(open files +)\d+ hidden \(permission\)$", r"\1none", line)


def test_dump_over_ssh_is_the_local_live_dump(ssh: SshServer) -> None:
    for fmt in ("text", "json"):
        remote, local = (
            mdtui("dump", "--source", "ssh:board-a", "--format", fmt),
            mdtui("dump", "--source", "live", "--format", fmt),
        )
        assert remote.returncode == 0, remote.stderr
        assert local.returncode == 0, local.stderr
        if fmt == "text":  # the header names the machine; every device and module line is the same
            assert "# board-a: live system, inferred allocator state" in remote.stdout
            body = [_hidden(ln) for ln in remote.stdout.splitlines() if not ln.startswith("#")]
            assert body == [_hidden(ln) for ln in local.stdout.splitlines() if not ln.startswith("#")]
            assert "=== /dev/media0: WinTV HVR-950Q ===" in body
        else:
            r, lo = json.loads(remote.stdout), json.loads(local.stdout)
            assert r["hosts"] == [{"name": "board-a", "state": "connected", "detail": ""}] and lo["hosts"] == []
            for doc in (r, lo):
                del doc["hosts"], doc["notes"]
                for dev in doc["media_devices"]:
                    assert dev.pop("hidden_openers") in (0, 1)
            assert r == lo
            assert r["media_devices"][0]["refcount"] == 2


def test_bind_and_unbind_through_ssh(ssh: SshServer) -> None:
    source = RemoteSource("board-a", backoff=FAST)
    seen = []
    source.subscribe(seen.append)
    try:
        assert source.ready(30) == []
        assert source.snapshot().device("1-1").refcount == 2
        source.perform(Step(0, "unbind", ("au0828", "1-1:1.0")))
        until(lambda: source.snapshot().device("1-1").refcount == 1)
        assert any(e.kind == "uevent" and e.text.startswith("unbind ") for e in seen)
        assert source.snapshot().seq >= max(e.seq for e in seen)  # the snapshot includes its events
        source.perform(Step(0, "bind", ("au0828", "1-1:1.0")))
        until(lambda: source.snapshot().device("1-1").refcount == 2)
        with pytest.raises(OSError) as refused:  # the target's kernel refuses: its errno, the host named
            source.perform(Step(0, "bind", ("au0828", "1-1:1.0")))
        assert refused.value.errno == errno.EBUSY
        assert str(refused.value.strerror).startswith("board-a: echo 1-1:1.0 > /sys/bus/usb/drivers/au0828/bind")
        with pytest.raises(OSError) as nothing:
            source.perform(Step(0, "unbind", ("no-such-driver", "1-1:1.0")))
        assert nothing.value.errno == errno.ENOENT
    finally:
        source.stop()


def test_a_lost_host_is_shown_and_reconnected(ssh: SshServer) -> None:
    source = RemoteSource("board-a", backoff=FAST)
    try:
        assert source.ready(30) == []
        ssh.stop()  # sshd and its sessions die: the agent with them
        until(lambda: source.snapshot().hosts[0].state != "connected")
        until(lambda: "host unreachable" in source.snapshot().hosts[0].detail)
        assert "Connection refused" in source.snapshot().hosts[0].detail
        assert source.snapshot().device("1-1") is not None  # the last state stays, marked as the host's
        ssh.start()
        until(lambda: source.snapshot().hosts[0].state == "connected")
        assert source.connections == 2
        control("unbind au0828 1-1:1.0")  # and the new agent follows the machine again
        until(lambda: source.snapshot().device("1-1").refcount == 1)
    finally:
        source.stop()


def test_failures_are_said_with_the_host(ssh: SshServer, tmp_path: Path) -> None:
    wrong = tmp_path / "other-key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong)], check=True)
    stranger = (
        f"ssh -F /dev/null -o IdentitiesOnly=yes -i {wrong} -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no"
    )
    denied = subprocess.run(
        [sys.executable, "-m", "mdtui", "dump", "--source", f"ssh:127.0.0.1:{ssh.port}"],
        capture_output=True,
        text=True,
        env=dict(os.environ, MDTUI_SSH=stranger),
        timeout=60,
    )
    assert denied.returncode == 1
    assert f"mdtui dump: 127.0.0.1:{ssh.port}: authentication failed (" in denied.stderr
    assert "Permission denied (publickey" in denied.stderr
    port = _closed_port()
    closed = mdtui("dump", "--source", f"ssh:127.0.0.1:{port}")
    assert closed.returncode == 1
    assert f"mdtui dump: 127.0.0.1:{port}: host unreachable (" in closed.stderr
    assert "Connection refused" in closed.stderr


def _closed_port() -> int:
    """A port nothing listens on."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_no_python3_on_the_target_is_named(tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    with SshServer(session_env=rig_env(), session_path=str(empty)) as srv:
        env = dict(os.environ, MDTUI_SSH=srv.mdtui_ssh)
        done = subprocess.run(
            [sys.executable, "-m", "mdtui", "dump", "--source", "ssh:board-a"], capture_output=True, text=True, env=env
        )
    assert done.returncode == 1
    assert "mdtui dump: board-a: no python3 on the target (the agent needs Python 3.8 or newer" in done.stderr


def test_the_tui_with_two_hosts(ssh: SshServer, snap_compare) -> None:  # type: ignore[no-untyped-def]
    a = RemoteSource("board-a", clock=fake_clock(), backoff=FAST)
    b = RemoteSource("board-b", clock=fake_clock(), backoff=FAST)
    source = MultiSource([("board-a", a), ("board-b", b)])
    try:
        # one after the other: each agent reads the machine while the other is idle (an
        # open /dev/media0 counts in its owner module's refcnt)
        assert a.ready(30) == []
        assert b.ready(30) == []
        a.reread_media("1-1")
        until(lambda: a.bytes_received > 0)
        time.sleep(0.3)
        app = MdtuiApp(source)

        async def run_before(pilot: Pilot) -> None:
            await settle(app)
            # the Interfaces tab: the Allocator tab's "open files" row counts processes hidden
            # from the agent, which depends on the ssh session's capabilities here, not on mdtui
            await pilot.press("down", "down", "4")
            await settle(app)
            await pilot.pause()

        assert snap_compare(app, terminal_size=(120, 40), run_before=run_before)
    finally:
        source.stop()
