"""``--log FILE``, ``--log-level`` and ``--dev``: where mdtui's own log (the ``mdtui``
loggers of the standard ``logging`` module) and Textual's go.

mdtui logs what a person debugging it asks first: which command, source and configuration a
run took, connections made and lost, each action and its refusal, each update at debug,
crashes.  Textual's log (the DOM, events, workers: much more) joins the same file at
``debug``, as ``mdtui.textual`` records: Textual writes it to a pipe that a thread reads
(``_forward_textual``), so that only ``LogFile`` ever writes the file.  Under ``--dev`` both
go to ``textual console`` too (textual-dev); that happens before the TUI imports Textual,
which reads its environment once.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import socket
import stat
import sys
from typing import TextIO

LOG = logging.getLogger("mdtui")
FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class LogError(Exception):
    """A log that cannot be set up, in the user's terms."""


class LogFile(logging.StreamHandler):  # type: ignore[type-arg]
    """The log file.  A write that fails (a full disk, /dev/full) is kept, said once when
    mdtui exits (``failure``), and ends the logging: a traceback on stderr would land on
    the TUI's screen."""

    def __init__(self, path: str) -> None:
        super().__init__(_open(path))
        self.path = path
        self.failure: Exception | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.failure is None:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        if self.failure is None and isinstance(error, Exception):
            self.failure = error


def _open(path: str) -> TextIO:
    """``path`` for appending: a FIFO nobody reads is refused (ENXIO) rather than waited
    on forever, as is anything but a file, a character device or a FIFO."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        why = "no reader on that FIFO" if exc.errno == errno.ENXIO else exc.strerror
        raise LogError(f"--log {path}: {why} ({errno.errorcode.get(exc.errno or 0, '?')})") from None
    mode = os.fstat(fd).st_mode
    if not (stat.S_ISREG(mode) or stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)):
        os.close(fd)
        raise LogError(f"--log {path}: not a file (EINVAL)")
    os.set_blocking(fd, True)
    try:  # "a" seeks to the end: a /proc file refuses (EINVAL)
        return os.fdopen(fd, "a", encoding="utf-8", errors="backslashreplace")
    except OSError as exc:
        os.close(fd)
        raise LogError(f"--log {path}: {exc.strerror} ({errno.errorcode.get(exc.errno or 0, '?')})") from None


def _forward_textual() -> str:
    """Where Textual writes its log: a pipe whose lines a thread logs as ``mdtui.textual``
    records, so that they reach the file through ``LogFile`` (a full disk or a FIFO whose
    reader left ends the log, not the TUI; Textual would open and write the file itself)."""
    import threading

    read, write = os.pipe()
    textual = LOG.getChild("textual")

    def forward() -> None:
        with os.fdopen(read, encoding="utf-8", errors="replace") as lines:
            for line in lines:
                textual.debug("%s", line.rstrip("\n"))

    threading.Thread(target=forward, name="mdtui-textual-log", daemon=True).start()
    return f"/proc/self/fd/{write}"


def setup(path: str | None, level: str, dev: bool) -> list[str]:
    """Open the log and point Textual at it; the warnings to say on stderr (a console not
    yet listening is one: the TUI runs anyway, as ``textual run --dev`` does)."""
    warnings: list[str] = []
    for previous in [h for h in LOG.handlers if isinstance(h, LogFile)]:  # a run in the same process before
        LOG.removeHandler(previous)
        previous.close()
    LOG.setLevel(getattr(logging, level.upper()))
    if path is not None:
        handler = LogFile(path)
        handler.setFormatter(logging.Formatter(FORMAT))
        LOG.addHandler(handler)
        if level == "debug":  # set, not put in the environment: no child process inherits it
            import textual.constants

            textual.constants.LOG_FILE = _forward_textual()  # type: ignore[misc]
    if dev:
        try:
            import textual_dev  # noqa: F401
        except ImportError:
            raise LogError("--dev needs textual-dev: pip install textual-dev, then run 'textual console'") from None
        host = os.environ.get("TEXTUAL_DEVTOOLS_HOST", "127.0.0.1")
        port_text = os.environ.get("TEXTUAL_DEVTOOLS_PORT", "8081")
        if not re.fullmatch(r"[0-9]{1,5}", port_text) or not 0 < int(port_text) < 65536:
            raise LogError(f"--dev: TEXTUAL_DEVTOOLS_PORT={port_text!r} is not a port number")
        features = [f for f in os.environ.get("TEXTUAL", "").split(",") if f]
        os.environ["TEXTUAL"] = ",".join(dict.fromkeys([*features, "devtools", "debug"]))
        from textual.logging import TextualHandler

        LOG.addHandler(TextualHandler())
        try:
            socket.create_connection((host, int(port_text)), timeout=1).close()
        except OSError as exc:
            name = errno.errorcode.get(exc.errno, "timed out") if exc.errno else "timed out"
            warnings.append(f"--dev: no 'textual console' at {host}:{port_text} ({name}): start it in another terminal")
    return warnings


def failure() -> str | None:
    """What went wrong writing the log, if anything did (said once, on the way out)."""
    for handler in LOG.handlers:
        if isinstance(handler, LogFile) and handler.failure is not None:
            error = handler.failure
            if isinstance(error, OSError):
                why = f"{error.strerror} ({errno.errorcode.get(error.errno or 0, '?')})"
            else:
                why = repr(error)
            return f"--log {handler.path}: the log stopped at a record it could not write: {why}"
    return None
