"""``mdtui rig`` outside the rig: what it says when umockdev is missing, the command line it
builds, the uevent wire format it sends (checked end to end in tests/rig), how its control
socket reads lines, and how it starts, ends and cleans up like a shell running COMMAND."""

from __future__ import annotations

import errno
import os
import signal
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from mdtui.cli import main
from mdtui.rig import control, launch, preload, uevents


def test_missing_prerequisites_are_named_with_their_packages(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MDTUI_RIG_PYTHON", "/nonexistent/python3")
    assert main(["rig", "--", "true"]) == launch.EX_UNAVAILABLE
    err = capsys.readouterr().err
    assert "GObject introspection for UMockdev in /nonexistent/python3" in err
    assert "apt-get install umockdev gir1.2-umockdev-1.0 python3-gi gcc" in err


def test_command_line_runs_mdtui_on_this_interpreter(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(launch.preload, "path", lambda: tmp_path / "absent.so")
    line = launch.command_line(["mdtui", "dump"], None, "fixed")
    assert line[:4] == ["umockdev-wrapper", launch.interpreter(), "-m", "mdtui.rig.server"]
    assert line[line.index("--") + 1 :] == [sys.executable, "-m", "mdtui", "dump"]
    assert line[line.index("--variant") + 1] == "fixed"
    no_command = launch.command_line([], None, "mainline")
    assert no_command[no_command.index("--") + 1 :] == [sys.executable, "-m", "mdtui", "--source", "live"]


def test_command_line_preloads_the_built_library(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    built = tmp_path / "libumockdev-preload.so.0"
    built.write_bytes(b"")
    monkeypatch.setattr(launch.preload, "path", lambda: built)
    monkeypatch.setattr(launch.preload, "current", lambda library: library == built)
    monkeypatch.setenv("LD_PRELOAD", "/other.so")
    line = launch.command_line(["true"], None, "mainline")
    assert line[:5] == ["env", f"LD_PRELOAD={built}:/other.so", launch.interpreter(), "-m", "mdtui.rig.server"]


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


# -- the control socket's line handling (mdtui/rig/control.py: no GObject needed) -------------


def test_control_answers_every_line_even_when_its_handler_raises() -> None:
    def handler(line: str) -> str:
        if line == "boom":
            raise RuntimeError("a bug")
        if line == "io":
            raise OSError(errno.ENOSPC, "No space left on device")
        return "ok"

    assert control.answer(handler, b"  plug hvr950q \r") == "ok"
    assert control.answer(handler, b"boom") == f"error {errno.EIO} EIO RuntimeError: a bug"
    assert control.answer(handler, b"io") == f"error {errno.ENOSPC} ENOSPC No space left on device"
    assert control.answer(handler, b"\xff\xfe").startswith(f"error {errno.EINVAL} EINVAL not UTF-8 text")
    assert control.answer(handler, control.TOO_LONG).startswith(f"error {errno.E2BIG} E2BIG line longer than")
    assert "\n" not in control.error(errno.EIO, "two\nlines")


def test_control_lines_are_bounded_and_a_cut_off_line_is_dropped() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(b"one\n" + b"x" * 10_000 + b"\ntwo\n" + b"y" * 5000 + b"\nthree")
        theirs.shutdown(socket.SHUT_WR)
        got = list(control.lines(ours, limit=64))
    assert got == [b"one", control.TOO_LONG, b"two", control.TOO_LONG]


# -- launch errors, exit statuses, signals (these start the rig: umockdev must be installed) ---

needs_rig = pytest.mark.skipif(bool(launch.missing()), reason="the rig's packages: make test installs them")
PROJECT = Path(__file__).resolve().parents[2]


def rig(tmp_path: Path, *command: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``mdtui rig -- COMMAND`` with its testbed under ``tmp_path/tmp`` (TMPDIR)."""
    (tmp_path / "tmp").mkdir(exist_ok=True)
    environ = dict(os.environ, TMPDIR=str(tmp_path / "tmp"), **env)
    line = [sys.executable, "-m", "mdtui", "rig", "--", *command]
    return subprocess.run(line, capture_output=True, text=True, timeout=60, env=environ, cwd=PROJECT)


def left_behind(tmp_path: Path) -> list[str]:
    return [p.name for p in (tmp_path / "tmp").iterdir()]


@needs_rig
def test_a_command_that_is_not_found_exits_127_with_one_line(tmp_path: Path) -> None:
    done = rig(tmp_path, "media-ct", "-p")
    assert done.returncode == 127
    assert done.stderr.splitlines() == ["mdtui rig: media-ct: command not found (ENOENT)"]
    assert left_behind(tmp_path) == []


@needs_rig
def test_a_command_that_cannot_be_executed_exits_126(tmp_path: Path) -> None:
    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\necho hello\n")
    done = rig(tmp_path, str(script))
    assert done.returncode == 126
    assert done.stderr.splitlines() == [f"mdtui rig: {script}: Permission denied (EACCES)"]
    assert left_behind(tmp_path) == []


@needs_rig
def test_a_compiler_that_fails_is_one_clear_line(tmp_path: Path) -> None:
    done = rig(tmp_path, "true", CC="false")
    assert done.returncode == launch.EX_UNAVAILABLE
    assert done.stderr.splitlines() == ["mdtui rig: cannot build the rig's shim: false exited with status 1"]
    assert left_behind(tmp_path) == []


@needs_rig
def test_the_exit_status_is_the_commands_or_128_plus_its_signal(tmp_path: Path) -> None:
    assert rig(tmp_path, "sh", "-c", "exit 3").returncode == 3
    assert rig(tmp_path, "sh", "-c", "kill -TERM $$").returncode == 128 + signal.SIGTERM
    assert rig(tmp_path, "sh", "-c", "kill -KILL $$").returncode == 128 + signal.SIGKILL
    assert left_behind(tmp_path) == []


@needs_rig
def test_teardown_while_clients_are_busy_is_quiet_and_complete(tmp_path: Path) -> None:
    """COMMAND ends while programs it started still open /dev/media0 and ask it: the rig stops
    serving, then removes the testbed (no traceback from a thread that found it gone)."""
    opener = (  # opens and closes /dev/media0 for 3 s, outliving COMMAND (and the testbed)
        "import os, time\nend = time.monotonic() + 3\nwhile time.monotonic() < end:\n"
        "    try: os.close(os.open('/dev/media0', os.O_RDWR))\n    except OSError: pass\n"
    )
    script = tmp_path / "opener.py"
    script.write_text(opener)
    busy = f"for i in 1 2 3 4 5 6; do ({sys.executable} -S {script}) >/dev/null 2>&1 & done; sleep 0.7; exit 0"
    done = rig(tmp_path, "sh", "-c", busy)
    assert done.returncode == 0
    assert "Traceback" not in done.stderr
    assert left_behind(tmp_path) == []


TEARDOWN = """
from mdtui.rig.server import Rig
from mdtui.sources.sim import build

rig = Rig(build()[0])
(rig.root / "sys/module/au0828/refcnt").unlink()  # as in the middle of removing the tree
rig.kernel.files.open("/dev/media0")  # pins au0828: its refcnt is to be rewritten
rig.sync_refcnts()
rig.close()
assert not rig.root.exists(), "the testbed is removed"
opened = rig.open_node("/dev/media0")
assert opened.fd is None and not rig.root.exists(), "nothing is served or written after teardown"
print("ok")
"""


@needs_rig
def test_refcnt_sync_survives_the_tree_going_away_and_teardown_stops_serving_first(tmp_path: Path) -> None:
    """The server's pieces, on the interpreter that has GObject introspection: a refcnt file
    missing under its module's directory (the tree half removed) is skipped, not raised on;
    after close() the testbed is gone and an open that comes late is not served."""
    env = dict(os.environ, PYTHONPATH=str(PROJECT), TMPDIR=str(tmp_path))
    done = subprocess.run([launch.interpreter(), "-c", TEARDOWN], capture_output=True, text=True, env=env, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr
    assert list(tmp_path.iterdir()) == []


@needs_rig
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_to_the_rig_reaches_the_command_and_the_testbed_goes(tmp_path: Path, signum: int) -> None:
    """``kill -TERM`` (or INT, HUP) to ``mdtui rig``: COMMAND gets it, the rig waits for it,
    removes the testbed and exits as COMMAND did (128+N)."""
    (tmp_path / "tmp").mkdir()
    env = dict(os.environ, TMPDIR=str(tmp_path / "tmp"))
    command = ["sh", "-c", 'echo $$ "$UMOCKDEV_DIR"; exec sleep 60']
    line = [sys.executable, "-m", "mdtui", "rig", "--", *command]
    proc = subprocess.Popen(line, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=PROJECT)
    try:
        assert proc.stdout is not None
        pid, testbed = proc.stdout.readline().split()
        assert Path(testbed).is_dir()
        proc.send_signal(signum)
        assert proc.wait(timeout=30) == 128 + signum
    finally:
        proc.kill()
        proc.communicate()
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid), 0)
    assert not Path(testbed).exists()
    assert left_behind(tmp_path) == []


def test_a_library_built_from_another_umockdev_or_recipe_is_not_used(tmp_path: Path) -> None:
    built = tmp_path / "libumockdev-preload.so.0"
    built.write_bytes(b"")
    stamp = tmp_path / "libumockdev-preload.so.0.version"
    stamp.write_text(preload._stamp(preload.installed_version()))
    assert preload.current(built)
    stamp.write_text(preload._stamp("0.17.15-1"))  # another umockdev: another protocol
    assert not preload.current(built)
    stamp.write_text(preload.installed_version())  # the same umockdev, an older recipe
    assert not preload.current(built)
