"""``mdtui rig``: become the rig's server (mdtui/rig/server.py) on the interpreter that has
GObject introspection, with umockdev's preload library, and hand it COMMAND.

The library is the one the project's set-up built (mdtui/rig/preload.py: its map of emulated
files grows, as a process's files may, up to RLIMIT_NOFILE), preloaded the way
``umockdev-wrapper`` preloads the installed one; without it, ``umockdev-wrapper`` and the
installed library, which aborts a client at its 51st emulated file (said on stderr).

The process execs into the server (nothing sits in between): a signal sent to ``mdtui rig``
is a signal to the server, which passes it on to COMMAND, waits for it and cleans up
(mdtui/rig/command.py), and the server's exit status is ``mdtui rig``'s.

The server needs Debian's umockdev, its typelib and python3-gi (PyGObject is not in the
project's virtualenv: the system interpreter has it), plus a C compiler for the sysfs write
shim.  When one is missing, ``missing()`` names it and the package that provides it.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

from . import preload

PACKAGES = "umockdev gir1.2-umockdev-1.0 python3-gi gcc"
EX_UNAVAILABLE = 69  # sysexits.h: a service the command needs is not there
_PROBE = "import gi; gi.require_version('UMockdev', '1.0'); from gi.repository import UMockdev"


def interpreter() -> str:
    """The Python with ``gi``: Debian's, unless MDTUI_RIG_PYTHON names another."""
    return os.environ.get("MDTUI_RIG_PYTHON", "/usr/bin/python3")


def missing() -> list[str]:
    """What the rig lacks on this machine, each with the package that provides it."""
    out = []
    if shutil.which("umockdev-wrapper") is None:
        out.append("umockdev-wrapper (package umockdev)")
    python = interpreter()
    probe = subprocess.run([python, "-c", _PROBE], capture_output=True, text=True) if Path(python).exists() else None
    if probe is None or probe.returncode != 0:
        out.append(f"GObject introspection for UMockdev in {python} (packages python3-gi, gir1.2-umockdev-1.0)")
    if shutil.which(os.environ.get("CC", "cc")) is None:
        out.append("a C compiler for the sysfs write shim (package gcc)")
    return out


def command_line(command: list[str], script: str | None, variant: str) -> list[str]:
    """The server's command line.  A COMMAND starting with ``mdtui`` runs on this
    interpreter; no COMMAND means the TUI on the live source, i.e. on the rig."""
    if not command:
        command = ["mdtui", "--source", "live"]
    if command[0] == "mdtui":
        command = [sys.executable, "-m", "mdtui", *command[1:]]
    opts = ["--variant", variant] + (["--script", str(Path(script).resolve())] if script else [])
    server = [interpreter(), "-m", "mdtui.rig.server", *opts, "--", *command]
    built = preload.path()
    if preload.current(built):
        return ["env", f"LD_PRELOAD={':'.join(p for p in (str(built), os.environ.get('LD_PRELOAD')) if p)}", *server]
    return ["umockdev-wrapper", *server]


def run(command: list[str], script: str | None = None, variant: str = "mainline") -> int:
    """Exec the server; returns only when it cannot (a status for the caller to exit with)."""
    lacking = missing()
    if lacking:
        print("mdtui rig: needs umockdev with GObject introspection; missing:", file=sys.stderr)
        for item in lacking:
            print(f"  - {item}", file=sys.stderr)
        print(f"install them with: sudo apt-get install {PACKAGES}", file=sys.stderr)
        return EX_UNAVAILABLE
    project = str(Path(__file__).resolve().parents[2])  # allocator/ and mdtui/ live here
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (project, os.environ.get("PYTHONPATH")) if p))
    line = command_line(command, script, variant)
    if line[0] == "umockdev-wrapper":
        print(
            f"mdtui rig: {preload.path()} is missing or was built from another umockdev "
            "(`make rig-preload` or `python -m mdtui.rig.preload` builds it): umockdev's own "
            "preload library aborts a program at its 51st emulated open file",
            file=sys.stderr,
        )
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(line[0], line, env)
    except OSError as exc:
        print(f"mdtui rig: {line[0]}: {exc.strerror}", file=sys.stderr)
        return 127 if exc.errno == errno.ENOENT else 126
