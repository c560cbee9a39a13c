"""``mdtui soak --source ssh:HOST`` against a real OpenSSH server (tests/sshd.py) whose sessions
reach the rig: the scenarios and the verdict run here, every step is made by the target's
``LiveMachine`` inside the agent, on Python 3.8.  The soak over ssh must earn the verdict the
live soak earns on the same rig, refusals must come back with the target's errno, and a host
that does not answer is said in one line."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from mdtui.soak.machine import Evidence, rig_variant
from mdtui.soak.remote import RemoteMachine
from mdtui.sources.remote import RemoteSource

from ..sshd import SshServer


def soak(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mdtui", "soak", *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,  # no terminal: a soak that asked would refuse
        timeout=120,
    )


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_soak_over_ssh_earns_the_verdict_of_the_live_soak(ssh: SshServer, tmp_path: Path) -> None:
    variant = rig_variant()
    junit = tmp_path / "soak.xml"
    # no --yes: the target says it is a rig, where nothing real is touched
    remote = soak("--source", "ssh:board-a", "--loops", "2", "--json", "--junit", str(junit))
    local = soak("--source", "live", "--yes", "--loops", "2", "--json")
    assert remote.returncode == local.returncode, remote.stdout + remote.stderr
    r, lo = json.loads(remote.stdout), json.loads(local.stdout)
    assert (r["source"], r["design"]) == ("ssh:board-a (rig)", variant)
    assert r["kernel"] == f"board-a, {lo['kernel']}" == "board-a, the rig (the simulated kernel behind umockdev)"
    assert (r["result"], r["device"]["usb_device"], r["device"]["drivers"]) == (
        lo["result"],
        lo["device"]["usb_device"],
        lo["device"]["drivers"],
    )

    def outcome(doc: dict) -> list[tuple[str, str, int, set[str]]]:
        return [(s["name"], s["result"], s["loops"], {f["kind"] for f in s["failures"]}) for s in doc["scenarios"]]

    assert outcome(r) == outcome(lo)
    regression = next(s for s in r["scenarios"] if s["name"] == "regression_test.txt")
    assert regression["opens"] > 0  # the open loops ran on the target, beside the bind/unbind loop
    if r["result"] == "pass":
        assert all(s["failures"] == [] for s in r["scenarios"])
    [suite] = ET.parse(junit).getroot().findall("testsuite")
    assert suite.get("name") == f"mdtui soak (ssh:board-a (rig), design {variant})"
    assert {c.get("classname") for c in suite.findall("testcase")} == {f"mdtui.soak.ssh_board_a_rig.{variant}"}


def test_a_refusal_on_the_target_is_its_oserror(ssh: SshServer) -> None:
    source = RemoteSource("board-a", backoff=(0.1, 0.5))
    try:
        assert source.ready(30) == []
        machine = RemoteMachine(source)
        assert (machine.rig, machine.real, machine.design) == (True, False, rig_variant())
        # a module au0828 uses (mc, videodev...): in use on every design (v3 lets the owner go while shared)
        used = next(m.name for m in machine.snapshot().modules if "au0828" in m.used_by)
        with pytest.raises(OSError) as busy:
            machine.rmmod(used)
        assert busy.value.errno == errno.EBUSY
        assert busy.value.strerror.startswith(f"rmmod: ERROR: Module {used} is in use by: ")
        assert "au0828" in busy.value.strerror.split(": ")[-1].split()
        fd = machine.open("/dev/media0", "test_ssh_soak")
        try:
            assert machine.device_info(fd) == "au0828"
        finally:
            machine.close(fd)
        with pytest.raises(OSError) as closed:  # the fd is the target's, and closed there
            machine.close(fd)
        assert closed.value.errno == errno.EBADF
        assert machine.snapshot().device("1-1").refcount == 2  # nothing was changed
        line = "BUG: KASAN: use-after-free in media_device_release+0x2c/0x90 [mc]"
        fd = os.open("/dev/kmsg", os.O_WRONLY)  # the rig's kernel log: the target's
        try:
            os.write(fd, f"<3>{line}".encode())
        finally:
            os.close(fd)
        deadline = time.monotonic() + 10
        found: list[Evidence] = []
        while not found and time.monotonic() < deadline:
            found += machine.evidence()
        assert found == [Evidence("kasan", line)]
    finally:
        source.stop()


def test_an_unreachable_host_is_one_line_and_exit_status_1(ssh: SshServer) -> None:
    port = closed_port()
    done = soak("--source", f"ssh:127.0.0.1:{port}", "--yes")
    assert done.returncode == 1 and done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith(f"mdtui soak: 127.0.0.1:{port}: host unreachable (") and "Connection refused" in line


def test_a_variant_other_than_the_targets_is_refused(ssh: SshServer) -> None:
    """--variant names another design than the one the target's rig runs: refused, the host
    named, before any step."""
    other = "v10" if rig_variant() != "v10" else "fixed"
    done = soak("--source", "ssh:board-a", "--variant", other, "--loops", "1")
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"mdtui soak: the rig on board-a runs the {rig_variant()} design, not {other}" in done.stderr
