"""``--log FILE`` at a level (mdtui's log, and Textual's at debug) and ``--dev`` with a real
``textual console`` (textual-dev).  Each run is a process of its own: Textual reads its
environment (TEXTUAL_LOG, TEXTUAL) once, when it is first imported."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mdtui.cli import main

#: the TUI on the default world: an unbind that works, one that is refused, then exit
RUN = """\
import asyncio, sys
from mdtui import logs
for warning in logs.setup(sys.argv[1] or None, sys.argv[2], sys.argv[3] == "dev"):
    print("warning:", warning)
from mdtui.scenarios import make_app, settle

async def main():
    app = make_app()
    async with app.run_test():
        await settle(app)
        app.action_perform("unbind au0828 1-1:1.0")
        await settle(app)
        app.action_perform("unbind au0828 1-1:1.0")
        await settle(app)

asyncio.run(main())
"""


def run(tmp_path: Path, log: str, level: str, dev: bool = False, port: int = 0) -> str:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TEXTUAL_DEVTOOLS_PORT": str(port or free_port())}
    done = subprocess.run(
        [sys.executable, "-c", RUN, log, level, "dev" if dev else ""],
        env=env,
        cwd=Path(__file__).parents[2],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def mdtui(tmp_path: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m mdtui ARGV`` in a process of its own, with ``env`` added to a bare one."""
    return subprocess.run(
        [sys.executable, "-m", "mdtui", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **env},
        cwd=Path(__file__).parents[2],
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_info_logs_actions_and_refusals_and_not_textual(tmp_path: Path) -> None:
    log = tmp_path / "mdtui.log"
    run(tmp_path, str(log), "info")
    text = log.read_text()
    assert " INFO    mdtui.app: unbind au0828 1-1:1.0\n" in text
    assert " WARNING mdtui.app: unbind au0828 1-1:1.0: refused: ENODEV: " in text
    assert "DEBUG" not in text and "mdtui.textual" not in text


def test_debug_adds_ours_and_textual_s_log(tmp_path: Path) -> None:
    log = tmp_path / "mdtui.log"
    run(tmp_path, str(log), "debug")
    text = log.read_text()
    assert " DEBUG   mdtui.pipeline: update to seq " in text
    assert "; media0 refcount 2→1 (au0828 unbound 1-1:1.0)" in text
    assert " DEBUG   mdtui.textual: Writing logs to '/proc/self/fd/" in text  # Textual's own log
    assert " DEBUG   mdtui.textual: loop=<" in text


def test_warning_keeps_only_what_went_wrong(tmp_path: Path) -> None:
    log = tmp_path / "mdtui.log"
    run(tmp_path, str(log), "warning")
    lines = log.read_text().splitlines()
    assert lines and all(" WARNING " in line for line in lines), lines


def test_a_log_that_cannot_be_written_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    where = tmp_path / "no" / "such" / "dir" / "mdtui.log"
    assert main(["--log", str(where), "dump", "--source", "sim"]) == 2
    assert f"mdtui: --log {where}: No such file or directory (ENOENT)" in capsys.readouterr().err


def test_dump_and_watch_log_their_command_configuration_and_refusals(tmp_path: Path) -> None:
    log = tmp_path / "mdtui.log"
    script = tmp_path / "lifecycle.txt"
    script.write_text("# an empty machine: nothing to remove\nrmmod au0828\n")
    assert main(["--log", str(log), "--log-level", "debug", "dump", "--source", "sim"]) == 0
    assert main(["--log", str(log), "watch", "--source", "sim", "--script", str(script)]) == 1
    text = log.read_text()
    assert " INFO    mdtui: mdtui 0.1.0: mdtui --log " in text and " dump --source sim\n" in text
    assert " INFO    mdtui: configuration: none (looked for it by " in text
    assert f" WARNING mdtui: {script}:2: rmmod au0828: refused: ENOENT: rmmod: ERROR: Module au0828 is not" in text
    assert " INFO    mdtui: exit status 1\n" in text


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_a_log_that_would_block_or_is_no_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    import os

    where = tmp_path / kind
    if kind == "fifo":
        os.mkfifo(where)  # nobody reads it: opening it for writing would wait for ever
        why = "no reader on that FIFO (ENXIO)"
    else:
        where.mkdir()
        why = "Is a directory (EISDIR)"
    assert main(["--log", str(where), "dump", "--source", "sim"]) == 2
    assert f"mdtui: --log {where}: {why}" in capsys.readouterr().err


def test_a_log_that_fills_up_is_said_once_at_the_end_not_as_a_traceback(tmp_path: Path) -> None:
    done = mdtui(tmp_path, "--log", "/dev/full", "dump", "--source", "sim")
    assert done.returncode == 0 and "media0" in done.stdout
    assert done.stderr == (
        "mdtui: --log /dev/full: the log stopped at a record it could not write: No space left on device (ENOSPC)\n"
    )


@pytest.mark.parametrize("where", ["/dev/full", "fifo"])
def test_textual_s_log_failing_ends_the_log_not_the_tui(tmp_path: Path, where: str) -> None:
    """At debug Textual logs a lot: a full disk, or a FIFO whose reader leaves, must not
    crash or hang the TUI (Textual would open and write the file itself)."""
    import os
    import threading

    if where == "fifo":
        fifo = tmp_path / "fifo"
        os.mkfifo(fifo)

        def read_a_little() -> None:
            with open(fifo, "rb") as f:
                f.read(300)

        reader = threading.Thread(target=read_a_little)
        reader.start()
        where = str(fifo)
    out = run(tmp_path, where, "debug")  # the TUI ran its actions and exited 0 (run checks it)
    assert "warning" not in out


@pytest.mark.parametrize("port", ["abc", "²", "99999", ""])
def test_dev_with_a_port_that_is_no_number_is_refused(tmp_path: Path, port: str) -> None:
    done = mdtui(tmp_path, "--dev", TEXTUAL_DEVTOOLS_PORT=port)
    assert (done.returncode, done.stderr) == (2, f"mdtui: --dev: TEXTUAL_DEVTOOLS_PORT={port!r} is not a port number\n")


def test_dev_is_for_the_tui(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--dev", "dump", "--source", "sim"]) == 2
    assert "--dev connects the TUI to 'textual console'" in capsys.readouterr().err


def test_dev_without_a_console_says_so_and_runs(tmp_path: Path) -> None:
    port = free_port()
    out = run(tmp_path, "", "info", dev=True, port=port)
    assert f"warning: --dev: no 'textual console' at 127.0.0.1:{port} (ECONNREFUSED)" in out


def test_dev_sends_our_log_to_textual_console(tmp_path: Path) -> None:
    port = free_port()
    textual = Path(sys.executable).with_name("textual")
    console = subprocess.Popen(
        [str(textual), "console", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},  # (COLUMNS=200: 10 s of drawing)
    )
    try:
        deadline = time.monotonic() + 20
        while True:  # listening?
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and console.poll() is None, "textual console did not start"
                time.sleep(0.05)
        out = run(tmp_path, "", "info", dev=True, port=port)
        assert "warning" not in out
    finally:
        console.terminate()
        shown, _ = console.communicate(timeout=10)
    assert "Connected to devtools" in shown
    assert "unbind au0828 1-1:1.0" in shown
