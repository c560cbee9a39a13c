"""``--soak-report FILE``: the JSON ``mdtui soak --json > FILE`` printed, read when the
metrics are made, again only when the file changed.  A missing or garbled file is a
reading with ``report`` None and one warning line on stderr (once per problem), never an
error."""

from __future__ import annotations

import errno
import json
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

from .families import SoakReading

#: the largest report read; a soak's JSON is a few kilobytes (its failures are bounded)
MAX_BYTES = 16 * 1024 * 1024


def read_soak_report(path: str) -> SoakReading:
    """The report in ``path``, or why there is none."""
    try:
        with open(path, "rb") as f:
            mtime = os.fstat(f.fileno()).st_mtime
            data = f.read(MAX_BYTES + 1)
    except OSError as exc:
        name = errno.errorcode.get(exc.errno or 0, "?")
        return SoakReading(path, None, None, f"cannot read it: {exc.strerror or exc} ({name})")
    if len(data) > MAX_BYTES:
        return SoakReading(path, None, mtime, f"too large for a soak report (over {MAX_BYTES // 2**20} MiB)")
    try:
        doc = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return SoakReading(path, None, mtime, f"not UTF-8 text ({exc.reason} at byte {exc.start})")
    except json.JSONDecodeError as exc:
        where = "empty" if not data.strip() else f"line {exc.lineno} column {exc.colno}: {exc.msg}"
        return SoakReading(path, None, mtime, f"not JSON ({where})")
    problem = _problem(doc)
    return SoakReading(path, None if problem else doc, mtime, problem)


def _problem(doc: Any) -> str | None:
    """Why ``doc`` is not a soak report this exporter reads; None when it is one."""
    if not isinstance(doc, dict) or doc.get("format") != "mdtui-soak":
        return 'not a soak report (no "format": "mdtui-soak"; write it with \'mdtui soak --json\')'
    if doc.get("version") != 1:
        return f"a soak report of version {doc.get('version')!r}; this mdtui reads version 1"
    scenarios = doc.get("scenarios")
    if not isinstance(scenarios, list) or not all(isinstance(s, dict) for s in scenarios):
        return "a soak report without its list of scenarios"
    if not isinstance(doc.get("result"), str):
        return "a soak report without its result"
    return None


class SoakFile:
    """The report in one file, read again when its size, mtime or inode changed; thread-safe
    (Prometheus scrapes on the HTTP server's threads)."""

    def __init__(self, path: str, warn: Callable[[str], None] | None = None) -> None:
        self.path = path
        self._warn = warn or (lambda line: print(line, file=sys.stderr, flush=True))
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int, int] | None = None
        self._reading: SoakReading | None = None
        self._warned: str | None = None

    def read(self) -> SoakReading:
        with self._lock:
            try:
                st = os.stat(self.path)
                stamp: tuple[int, int, int, int] | None = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
            except OSError:
                stamp = None
            if self._reading is None or stamp is None or stamp != self._stamp:
                self._reading, self._stamp = read_soak_report(self.path), stamp
            reading = self._reading
            if reading.problem is not None and reading.problem != self._warned:
                self._warn(f"mdtui metrics: warning: --soak-report {self.path}: {reading.problem}")
            self._warned = reading.problem
            return reading
