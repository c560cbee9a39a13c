"""A machine read over ssh: the agent (mdtui/remote/agent.py) runs there and streams JSON
lines (mdtui/remote/wire.py); this source turns them into snapshots and events.

The system ``ssh`` is used as it is (``~/.ssh/config``, agents, jump hosts); ``MDTUI_SSH``
replaces the command, as ``GIT_SSH`` does (split like a shell line).  It runs with
``BatchMode=yes`` (a password prompt cannot be answered under a TUI) and server-alive
probes, so a host that vanishes is noticed within ~15 s.  The connection lives in its own
thread: a host that is slow, lost or refusing never holds the screen.  A lost host is
tried again after 0.5 s, then twice as long each time up to 30 s, and shows why in the
meantime (``HostView``).  Each failure is said in the user's terms, with the host named:
unreachable, authentication failed, no python3 (the agent needs 3.8 or newer), a device
node the ssh user may not open (the ``video`` group).

Events are numbered here (the agent's numbers start again after a reconnect) and a
snapshot's ``seq`` is the number of the last event it includes: the pipeline's contract.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import os
import queue
import re
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import IO, Any

from allocator import KernelError
from allocator.events import ERROR, TRACE, Event

from .. import persist
from ..model import HostView, SystemSnapshot
from ..remote import pack, wire
from ..step import Step
from . import Source

#: no terminal, no escape character, never a prompt; a host that does not answer is given up
#: after 10 s, one that goes silent after 15 s (3 probes 5 s apart)
SSH_OPTIONS = (
    "-T",
    "-e",
    "none",
    "-o",
    "BatchMode=yes",
    "-o",
    "ConnectTimeout=10",
    "-o",
    "ServerAliveInterval=5",
    "-o",
    "ServerAliveCountMax=3",
)
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 30.0
REPLY_TIMEOUT = 30.0
MAX_LINE = 16 << 20  # a whole snapshot is one line: ~150 KB per HVR-950Q
TARGET = re.compile(
    # names as hosts and users have them: no shell's or ssh's specials, and no "-" first (an option)
    r"^(?:(?P<user>[A-Za-z0-9_.][A-Za-z0-9_.-]*)@)?"
    r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9_][A-Za-z0-9_.-]*))(?::(?P<port>\d{1,5}))?$"
)
#: ssh's own words for a host it could not reach, and for keys it could not use
UNREACHABLE = (
    "Connection refused",
    "No route to host",
    "Connection timed out",
    "Could not resolve hostname",
    "Network is unreachable",
    "Name or service not known",
    "Connection closed by",
    "Connection reset",
)
AUTH = (
    "Permission denied",
    "Host key verification failed",
    "Too many authentication failures",
    "REMOTE HOST IDENTIFICATION",
)
NO_PYTHON = "no python3 on the target (the agent needs Python 3.8 or newer, from the standard library only)"
EMPTY = SystemSnapshot("live", 0, (), (), ())
LOG = logging.getLogger(__name__)


class Target:
    """``[USER@]HOST[:PORT]`` (``[::1]:22`` for an IPv6 address)."""

    def __init__(self, text: str) -> None:
        found = TARGET.match(text)
        if found is None or (found["port"] is not None and not 0 < int(found["port"]) < 65536):
            raise ValueError(f"not [USER@]HOST[:PORT]: {text!r}")
        self.text = text
        self.user, self.port = found["user"], found["port"]
        self.host = found["v6"] or found["host"]

    def ssh_args(self) -> list[str]:
        return [*(["-p", self.port] if self.port else []), *(["-l", self.user] if self.user else []), "--", self.host]


def ssh_command() -> list[str]:
    """``MDTUI_SSH`` split as a shell would, or ``ssh``."""
    return shlex.split(os.environ.get("MDTUI_SSH", "")) or ["ssh"]


def why(status: int, stderr: str, fatal: str | None) -> str:
    """A connection's end, in the user's terms (the host is named by the caller)."""
    if fatal:
        return fatal
    last = next((ln.strip() for ln in reversed(stderr.splitlines()) if ln.strip()), "")
    if status == 127 or "python3: not found" in stderr or "python3: command not found" in stderr:
        return NO_PYTHON
    if status == 255 and any(s in stderr for s in AUTH):
        return f"authentication failed ({last})"
    if status == 255 and any(s in stderr for s in UNREACHABLE):
        return f"host unreachable ({last})"
    if status == 255:
        return f"ssh failed ({last or 'exit status 255'})"
    return f"the agent ended (exit status {status}{': ' + last if last else ''})"


class RemoteSource(Source):
    """One host; ``snapshot()`` is the last state the agent sent (no I/O: ``snapshot_on_loop``)."""

    snapshot_on_loop = True

    def __init__(
        self,
        target: str,
        *,
        read_only: bool = False,
        exact: bool = False,
        ssh: list[str] | None = None,
        python: str = "python3",
        backoff: tuple[float, float] = (BACKOFF_FIRST, BACKOFF_MAX),
        clock: Callable[[], float] | None = None,
    ) -> None:
        """``clock``: stamp events with it when they arrive (screens made twice the same)
        instead of with the agent's time."""
        super().__init__()
        self.target = Target(target)
        self.name = target
        self.read_only = read_only
        self._options = {"read_only": read_only, "exact": exact}
        self._ssh = ssh or ssh_command()
        self._python = python
        self._backoff = backoff
        self._clock = clock
        self.lock = threading.RLock()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._ended = threading.Event()  # a connection attempt ended (for ready)
        self._reason = ""  # why the last one ended
        self._thread: threading.Thread | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._outbox: queue.SimpleQueue[bytes | None] | None = None  # requests for the agent
        self._doc: dict[str, Any] | None = None
        self._snap = EMPTY
        self._seq = 0
        self._offset = 0.0  # the agent's clock minus ours
        self.host = HostView(target, "connecting")
        self.user = self.target.user or ""
        self._ident = 0
        self._waiting: set[int] = set()  # requests a caller waits for the reply to
        self._replies: dict[int, tuple[list[Any] | None, Any]] = {}  # id -> (error, value)
        self._reply_ready = threading.Condition(self.lock)
        self.connections = 0  # how many times the agent said hello
        self.bytes_received = 0

    # -- the contract ------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"ssh {self.name}", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        proc = self._proc
        if proc is not None:
            _end(proc)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def now(self) -> float:
        """The agent's clock (as our clock plus how far apart they were at hello)."""
        return self._clock() if self._clock is not None else time.monotonic() + self._offset

    def snapshot(self) -> SystemSnapshot:
        with self.lock:
            return self._snap

    def ready(self, timeout: float) -> list[str]:
        self.start()
        deadline = time.monotonic() + timeout
        while not self._connected.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return [f"{self.name}: no answer in {timeout:g} s"]
            if self._ended.wait(min(left, 0.05)):
                with self.lock:
                    if self.host.state == "disconnected":
                        return [f"{self.name}: {self._reason}"]
        return []

    def reread_media(self, key: str) -> None:
        self._send(wire.request(self._next_id(), "reread", key=key))

    def perform(self, step: Step) -> None:
        """The step on the target (its LiveSource writes sysfs there); a refusal is the
        target's errno and words, with the host named."""
        device = step.args[-1] if step.args else self.name
        if self.read_only:
            raise KernelError(errno.EROFS, f"{self.name}: {step}: mdtui runs read-only (--read-only)", device)
        try:
            self.call("perform", command=step.command, args=list(step.args))
        except OSError as exc:
            text = str(exc.strerror)
            text = text if text.startswith(f"{self.name}: ") else f"{self.name}: {text}"
            code = exc.errno or errno.EIO
            fields = {"ERRNO": errno.errorcode.get(code, str(code)), "OP": str(step)}
            self._emit(ERROR, exc.filename or device, text, level="err", fields=fields)
            raise KernelError(exc.errno or errno.EIO, text, exc.filename or device) from None

    def call(self, op: str, timeout: float = REPLY_TIMEOUT, **fields: Any) -> Any:
        """One request to the agent (``op`` with ``fields``), waited for: its reply's
        ``value`` (None when it has none).  Its refusal raises ``OSError`` with the agent's
        errno, text and file; ENOTCONN when not connected or the connection ends meanwhile,
        ETIMEDOUT when no reply comes in ``timeout`` s.  Any thread may call it."""
        if not self._connected.is_set():
            raise OSError(errno.ENOTCONN, f"{self.name}: not connected ({self.host.detail})")
        connection, ident = self.connections, self._next_id()
        with self.lock:
            self._waiting.add(ident)
        self._send(wire.request(ident, op, **fields))
        deadline = time.monotonic() + timeout
        with self.lock:
            try:
                while ident not in self._replies:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise OSError(errno.ETIMEDOUT, f"{self.name}: {op}: no reply in {timeout:g} s")
                    if not self._connected.is_set() or self.connections != connection:
                        raise OSError(errno.ENOTCONN, f"{self.name}: {op}: the connection was lost")
                    self._reply_ready.wait(min(left, 0.1))
                error, value = self._replies.pop(ident)
            finally:
                self._waiting.discard(ident)
                self._replies.pop(ident, None)
        if error is not None:
            code, text, filename = error
            raise OSError(code, text, filename)
        return value

    # -- the connection ----------------------------------------------------------------

    def argv(self, size: int) -> list[str]:
        return [*self._ssh, *SSH_OPTIONS, *self.target.ssh_args(), pack.command(size, self._python)]

    def _run(self) -> None:
        delay = self._backoff[0]
        while not self._stop.is_set():
            started = time.monotonic()
            reason = self._connect()
            if self._stop.is_set():
                return
            if self._connected.is_set() or time.monotonic() - started > self._backoff[1]:
                delay = self._backoff[0]  # it had worked: start the backoff again
            self._connected.clear()
            self._reason = reason
            self._lost(f"{reason}; trying again in {delay:g} s")
            self._ended.set()
            if self._stop.wait(delay):
                return
            delay = min(delay * 2, self._backoff[1])
            self._set_host("connecting", "")

    def _connect(self) -> str:
        """One connection, until it ends; why it ended."""
        body = pack.payload(self._options)
        try:
            proc = subprocess.Popen(
                self.argv(len(body)),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # a Ctrl-C at the terminal is the TUI's, not ssh's
            )
        except OSError as exc:
            return f"cannot run {self._ssh[0]}: {exc.strerror}"
        self._proc = proc
        stderr: list[bytes] = []
        reader = threading.Thread(target=_drain, args=(proc.stderr, stderr), daemon=True)
        reader.start()
        # the agent, then the requests, are written by a thread of its own: a target that does
        # not read them (a shell that did not start python3, a hung agent) must keep neither
        # this reader nor the caller of a request (the event loop's re-reads) waiting
        outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._outbox = outbox
        threading.Thread(target=_feed, args=(proc.stdin, body, outbox), daemon=True).start()
        fatal: list[str] = []
        try:
            assert proc.stdout is not None
            while raw := proc.stdout.readline(MAX_LINE):
                if not raw.endswith(b"\n") and len(raw) == MAX_LINE:
                    raise wire.ProtocolError(f"a line longer than {MAX_LINE >> 20} MiB")
                self.bytes_received += len(raw)
                self._receive(raw, fatal)
        except (wire.ProtocolError, persist.FormatError) as exc:
            fatal.append(f"the agent sent what this mdtui cannot read ({exc})")
        except Exception as exc:  # whatever the agent sent, the connection ends and is tried again
            fatal.append(f"the agent sent what this mdtui cannot read ({type(exc).__name__}: {exc})")
        finally:
            self._outbox = None
            outbox.put(None)
            _end(proc)
            status = proc.wait()
            reader.join(timeout=2)
            self._proc = None
        text = b"".join(stderr).decode("utf-8", "replace")
        if self._connected.is_set() and not fatal:
            return "connection lost" + (f" ({text.strip().splitlines()[-1]})" if text.strip() else "")
        return why(status, text, fatal[0] if fatal else None)

    def _receive(self, raw: bytes, fatal: list[str]) -> None:
        msg = wire.parse(raw)
        kind = msg.get("t")
        if kind == "hello":
            self._offset = wire.number(msg.get("clock", 0.0), "hello.clock") - time.monotonic()
            self.user = str(msg.get("user", self.user))
        elif kind == "update":
            self._update(msg)
        elif kind == "reply":
            ident, error = msg.get("id"), msg.get("error")
            if type(ident) is not int or not (error is None or wire.is_error(error)):
                raise wire.ProtocolError(f"a reply is an id and ok or [errno, text, file]: {raw[:80]!r}")
            with self.lock:  # kept only while asked for (a re-read's reply is not waited for)
                if ident in self._waiting:
                    self._replies[ident] = (None if error is None else list(error), msg.get("value"))
                    self._reply_ready.notify_all()
        elif kind == "fatal":
            fatal.append(str(msg.get("text")))

    def _update(self, msg: dict[str, Any]) -> None:
        with self.lock:
            if "snapshot" in msg:
                doc = msg["snapshot"]
            elif "patch" in msg:
                if self._doc is None:
                    raise wire.ProtocolError("a patch before any snapshot")
                doc = wire.apply(self._doc, msg["patch"]) if msg["patch"] is not None else self._doc
            else:
                doc = self._doc
            events = [self._event(e) for e in msg.get("events", [])]
            first = False
            if doc is not None:
                snap = persist.decode(wire.unkeyed(doc))
                self._doc = doc
                first = not self._connected.is_set()
                self._connected.set()
                self.connections += first
                self.host = HostView(self.name, "connected")
                self._snap = self._shown(snap)
            for e in events:
                self.publish(e)
            if "error" in msg:
                self._emit(
                    ERROR, self.name, f"{self.name}: the agent could not read the machine: {msg['error']}", "err"
                )
            if doc is not None and not events:
                self.changed()
            if first:
                self._emit(TRACE, self.name, f"{self.name}: connected", "info")

    def _event(self, item: Any) -> Event:
        if not isinstance(item, list) or len(item) != 7:
            raise wire.ProtocolError(f"an event is 7 items: {item!r:.80}")
        _, when, kind, level, device, text, fields = item
        if not (isinstance(fields, dict) and all(type(k) is str and type(v) is str for k, v in fields.items())):
            raise wire.ProtocolError(f"an event's fields are strings by name: {fields!r:.80}")
        when = wire.number(when, "event time")
        self._seq += 1
        when = self._clock() if self._clock is not None else when
        return Event(self._seq, when, str(kind), str(level), str(device), str(text), fields)

    def _shown(self, snap: SystemSnapshot) -> SystemSnapshot:
        """The agent's snapshot as this source shows it: our numbering, the host, and a note
        for each device node the ssh user may not open."""
        denied = [d.devnode or d.key for d in snap.media_devices if d.unread is not None and d.unread.state == "denied"]
        who = self.user or "the ssh user"
        notes = [f"{self.name}: {n}" for n in snap.notes]
        notes += [f"{self.name}: permission denied on {node}: add {who} to the 'video' group there" for node in denied]
        return dataclasses.replace(snap, seq=self._seq, notes=tuple(notes), hosts=(self.host,))

    def _lost(self, detail: str) -> None:
        self._set_host("disconnected", detail)
        self._emit(ERROR, self.name, f"{self.name}: {detail}", "err")

    def _set_host(self, state: str, detail: str) -> None:
        with self.lock:
            self.host = HostView(self.name, state, detail)
            self._snap = dataclasses.replace(self._snap, hosts=(self.host,))
        LOG.log(logging.WARNING if state == "disconnected" else logging.INFO, "%s: %s %s", self.name, state, detail)
        self.changed()

    def _emit(self, kind: str, device: str, text: str, level: str, fields: dict[str, str] | None = None) -> None:
        with self.lock:
            self._seq += 1
            self._snap = dataclasses.replace(self._snap, seq=self._seq)
            event = Event(self._seq, self.now(), kind, level, device, text, fields or {})
            self.publish(event)

    def _send(self, data: bytes) -> None:
        """Queue a request for the agent (dropped when there is no connection: its end is
        said by the connection's thread)."""
        outbox = self._outbox
        if outbox is not None:
            outbox.put(data)

    def _next_id(self) -> int:
        with self.lock:
            self._ident += 1
            return self._ident


def _end(proc: subprocess.Popen[bytes]) -> None:
    """End ssh and whatever it started (its own session: a stand-in's children too)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)


def _feed(stream: IO[bytes] | None, body: bytes, outbox: queue.SimpleQueue[bytes | None]) -> None:
    """Write the agent, then each request queued, until None; a target that went away is the
    reader's to report."""
    if stream is None:
        return
    with contextlib.suppress(OSError, ValueError):
        data: bytes | None = body
        while data is not None:
            stream.write(data)
            stream.flush()
            data = outbox.get()


def _drain(stream: IO[bytes] | None, into: list[bytes]) -> None:
    """Keep the last 8 KB of ssh's standard error (its reasons)."""
    if stream is None:
        return
    for chunk in iter(lambda: stream.read(4096), b""):
        into.append(chunk)
        while sum(map(len, into)) > 8192 and len(into) > 1:
            into.pop(0)
