"""``--log FILE``, ``--log-level`` and ``--dev``: where mdtui's own log (the ``mdtui``
loggers of the standard ``logging`` module) and Textual's go.

mdtui logs what a person debugging it asks first: which source and configuration a run
took, connections made and lost, each action and its refusal, crashes.  Textual's log (the
DOM, events, workers: much more) joins the same file at ``debug``, through Textual's own
``TEXTUAL_LOG``; under ``--dev`` both go to ``textual console`` instead (textual-dev).
Everything here happens before Textual is imported: it reads its environment once.
"""

from __future__ import annotations

import errno
import logging
import os
import socket

LOG = logging.getLogger("mdtui")
FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class LogError(Exception):
    """A log that cannot be set up, in the user's terms."""


def setup(path: str | None, level: str, dev: bool) -> list[str]:
    """Open the log and point Textual at it; the warnings to say on stderr (a console not
    yet listening is one: the TUI runs anyway, as ``textual run --dev`` does)."""
    warnings: list[str] = []
    LOG.setLevel(getattr(logging, level.upper()))
    if path is not None:
        try:
            handler = logging.FileHandler(path, encoding="utf-8")
        except OSError as exc:
            name = errno.errorcode.get(exc.errno or 0, "?")
            raise LogError(f"--log {path}: {exc.strerror} ({name})") from None
        handler.setFormatter(logging.Formatter(FORMAT))
        LOG.addHandler(handler)
        if level == "debug":
            os.environ["TEXTUAL_LOG"] = os.path.abspath(path)
    if dev:
        try:
            import textual_dev  # noqa: F401
        except ImportError:
            raise LogError("--dev needs textual-dev: pip install textual-dev, then run 'textual console'") from None
        features = [f for f in os.environ.get("TEXTUAL", "").split(",") if f]
        os.environ["TEXTUAL"] = ",".join(dict.fromkeys([*features, "devtools", "debug"]))
        from textual.logging import TextualHandler

        LOG.addHandler(TextualHandler())
        host = os.environ.get("TEXTUAL_DEVTOOLS_HOST", "127.0.0.1")
        port = int(os.environ.get("TEXTUAL_DEVTOOLS_PORT", "8081"))
        try:
            socket.create_connection((host, port), timeout=1).close()
        except OSError as exc:
            name = errno.errorcode.get(exc.errno or 0, "timed out") if exc.errno else "timed out"
            warnings.append(f"--dev: no 'textual console' at {host}:{port} ({name}): start it in another terminal")
    return warnings
