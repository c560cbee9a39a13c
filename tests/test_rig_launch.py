"""``mdtui rig`` outside the rig: what it says when umockdev is missing, the command line it
builds, and the uevent wire format it sends (checked end to end in tests/rig)."""

from __future__ import annotations

import socket
import struct
import sys

import pytest

from mdtui.cli import main
from mdtui.rig import launch, uevents


def test_missing_prerequisites_are_named_with_their_packages(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MDTUI_RIG_PYTHON", "/nonexistent/python3")
    assert main(["rig", "--", "true"]) == launch.EX_UNAVAILABLE
    err = capsys.readouterr().err
    assert "GObject introspection for UMockdev in /nonexistent/python3" in err
    assert "apt-get install umockdev gir1.2-umockdev-1.0 python3-gi gcc" in err


def test_command_line_runs_mdtui_on_this_interpreter() -> None:
    line = launch.command_line(["mdtui", "dump"], None, "fixed")
    assert line[:4] == ["umockdev-wrapper", launch.interpreter(), "-m", "mdtui.rig.server"]
    assert line[line.index("--") + 1 :] == [sys.executable, "-m", "mdtui", "dump"]
    assert line[line.index("--variant") + 1] == "fixed"
    no_command = launch.command_line([], None, "mainline")
    assert no_command[no_command.index("--") + 1 :] == [sys.executable, "-m", "mdtui", "--source", "live"]


def test_uevent_message_layout() -> None:
    env = {"SEQNUM": "7", "ACTION": "remove", "SUBSYSTEM": "media", "DEVPATH": "/devices/x/media0"}
    msg = uevents.pack(env)
    prefix, magic, size, off, length, subsystem, devtype, _, _ = struct.unpack_from("=8sIIIIIIII", msg)
    assert prefix == b"libudev\0" and socket.ntohl(magic) == uevents.UDEV_MONITOR_MAGIC
    assert size == off == 40 and length == len(msg) - 40
    assert socket.ntohl(subsystem) == uevents.murmur_hash2("media") and devtype == 0
    props = msg[off:].split(b"\0")[:-1]
    assert props[:3] == [b"ACTION=remove", b"DEVPATH=/devices/x/media0", b"SUBSYSTEM=media"]
    assert b"SEQNUM=7" in props
    assert uevents.murmur_hash2("") == 0 and uevents.murmur_hash2("usb") != uevents.murmur_hash2("media")
