"""The exporter: the pipeline's updates (mdtui/pipeline.py, consumed as ``watch`` consumes
them) kept as the current snapshot and counters, served over HTTP or written to a textfile.

Everything but the HTTP server runs on the calling thread: the source's callbacks only queue
a call and wake the loop, which blocks in select on the source's descriptors and a pipe.  The
server's threads only read the current state (one immutable pair, replaced whole).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, generate_latest, start_http_server

from .. import atomic
from ..follow import Follower
from ..model import SystemSnapshot
from ..pipeline import Update
from ..sources import Source
from .families import Seen, SnapshotCollector, SoakReading

#: the file node_exporter's textfile collector reads (it reads only names ending in .prom)
TEXTFILE = "mdtui.prom"


class Exporter(Follower):
    """A source's current state as metrics, kept current by its pipeline (mdtui/follow.py)."""

    def __init__(
        self,
        source: Source,
        local_host: str,
        soak: Callable[[], SoakReading] | None = None,
        host_label: str | None = None,
    ) -> None:
        super().__init__(source)
        self._state: tuple[SystemSnapshot, Seen] = (self.pipeline.last, Seen())
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(SnapshotCollector(self.state, local_host, soak, host_label))

    def state(self) -> tuple[SystemSnapshot, Seen]:
        """The snapshot and counters the metrics show now (any thread)."""
        return self._state

    def render(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)

    def apply(self, update: Update) -> None:
        """Fold an update into the state (one immutable pair, replaced whole)."""
        hosts = [h.name for h in update.snapshot.hosts]
        seen = self._state[1].after(update.events, len(update.errors), hosts)
        self._state = (update.snapshot, seen)


class TextfileError(Exception):
    """The textfile could not be written: its path and the system call's error."""

    def __init__(self, path: str, error: OSError) -> None:
        super().__init__(f"{path}: {error}")
        self.path, self.error = path, error


class Textfile:
    """``DIR/mdtui.prom``, replaced atomically: written to a temporary file in DIR (a name
    node_exporter skips), flushed to disk, then renamed over it, so a reader sees the old
    file or the new one, never part of one."""

    def __init__(self, directory: str, render: Callable[[], bytes]) -> None:
        self.directory = directory
        self.path = os.path.join(directory, TEXTFILE)
        self._render = render
        self._written: bytes | None = None

    def update(self) -> bool:
        """Write the metrics when they differ from what was written last; whether it wrote.
        Raises ``TextfileError`` when it cannot (the temporary file is removed)."""
        data = self._render()
        if data == self._written:
            return False
        try:
            atomic.replace(self.path, data, 0o644)  # node_exporter may run as another user
        except OSError as exc:
            raise TextfileError(self.path, exc) from exc
        self._written = data
        return True


class Server:
    """``/metrics`` over HTTP (prometheus_client's WSGI server, on its own daemon threads)."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry) -> None:
        """Bind and serve; raises ``OSError`` when the address cannot be bound."""
        self.httpd: WSGIServer
        self.thread: threading.Thread
        self.httpd, self.thread = start_http_server(port, addr=host, registry=registry)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.httpd.server_address[:2]
        return str(host), int(port)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)
