"""The agent: runs on the target, reads it with the live source, and talks JSON lines
(``wire``) on its standard input and output.

It is the live reader (mdtui/sources/live.py and mdtui/live/) with the kernel's netlink
socket as its monitor (mdtui/live/netlink.py) instead of pyudev: ``pack`` sends exactly
those modules to the target's ``python3 -I -S`` (3.8 or newer), so nothing is installed
there and nothing outside the standard library is imported.  It blocks in ``select`` on
its input and the source's descriptors: idle, it uses no CPU.  After anything that may
have changed the machine (uevents, a close, a request) it sends the events and a patch of
the snapshot; nothing when nothing changed.  It exits when its input ends (ssh went away),
switching off what exact mode switched on.

``mdtui soak --source ssh:HOST`` drives the target through it (``machine`` requests, see
``_machine``): a ``LiveMachine`` of the soak (mdtui/soak/machine.py) made on the first, each
call made on a thread of its own.  While it exists the agent stops reading the machine for
itself: its reads open the media nodes, which counts in their owner module's refcnt, the
very number the soak asserts after each step.
"""

from __future__ import annotations

import errno
import os
import platform
import pwd
import select
import socket
import sys
import threading
import time
import traceback
from typing import Any

from allocator.events import Event
from allocator.mc.topology import Topology

from .. import persist
from ..live.netlink import NetlinkMonitor
from ..sources.live import LiveSource
from ..step import Step
from . import wire

IN, OUT = 0, 1
#: a change comes as a burst of uevents (an unbind: one per node, then the interface's):
#: read on while the next comes within QUIET s (at most BURST s), then read the machine once
QUIET, BURST = 0.005, 0.05
#: the soak machine's calls that take one of its open files, and those that take names
FD_METHODS = ("close", "device_info", "querycap", "artifact")
NAME_METHODS = ("bind", "unbind", "rmmod", "modprobe", "unplug", "plug", "video_node")
MAX_LINE = 1 << 20  # a request longer than this is no request of ours


class Agent:
    def __init__(self, source: LiveSource, write: Any = None) -> None:
        self.source = source
        self._write = write or _write_all
        self._events: list[Event] = []
        self._last: dict[str, Any] | None = None
        self._buffer = b""
        self._memo = persist.Memo((Topology,))  # a graph not read again is not encoded again
        self.machine: Any = None  # the soak's LiveMachine, made by the first machine request
        self._fds: set[int] = set()  # the files its open() made (the only ones it may close)
        self._fds_lock = threading.Lock()
        self._sending = threading.Lock()  # one line at a time: machine calls reply from their threads
        source.subscribe(lambda event: self._events.append(event))

    def send(self, kind: str, **fields: Any) -> None:
        data = wire.line(kind, **fields)
        with self._sending:
            self._write(data)

    def hello(self) -> None:
        self.send(
            "hello",
            host=socket.gethostname(),
            user=_user(),
            python=platform.python_version(),
            kernel=platform.release(),
            clock=self.source.now(),
            pid=os.getpid(),
        )

    def update(self) -> None:
        """The events since the last update and what they changed (the first: everything);
        then, when /proc is due a scan, the open files it finds, as a second update: the
        state does not wait for the scan."""
        if self.machine is not None:  # a soak drives the machine: nothing read, nothing sent
            self._events.clear()
            return
        self._update(scan=False)
        if self.source.scan_due:
            self._update(scan=True)

    def _update(self, scan: bool) -> None:
        events, self._events = self._events, []
        try:
            doc = wire.keyed(persist.plain(self.source.snapshot(scan), self._memo))
            self._memo.turn()
        except Exception as exc:  # a reader's bug must not end the agent: said, and tried again
            where = traceback.extract_tb(exc.__traceback__)[-1]
            text = f"{type(exc).__name__}: {exc} ({where.filename}:{where.lineno})"
            self.send("update", events=[_event(e) for e in events], error=text)
            return
        if self._last is None:
            self.send("update", events=[_event(e) for e in events], snapshot=doc)
        else:
            patch = wire.diff(self._last, doc)
            if patch is None and not events:
                return
            self.send("update", events=[_event(e) for e in events], patch=patch)
        self._last = doc

    def requests(self, data: bytes) -> None:
        """Answer the complete lines of ``data`` (the rest waits for more)."""
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        if len(self._buffer) > MAX_LINE:
            self._buffer = b""
            self.send("fatal", kind="protocol", text="a request longer than 1 MiB")
            raise SystemExit(1)
        for raw in lines:
            if raw.strip():
                self.request(raw)

    def request(self, raw: bytes) -> None:
        try:
            obj = wire.parse(raw)
        except wire.ProtocolError as exc:
            self.send("fatal", kind="protocol", text=str(exc))
            raise SystemExit(1) from None
        ident, op = obj.get("id"), obj.get("op")
        if op == "reread" and isinstance(obj.get("key"), str):
            self.source.reread_media(obj["key"])
            self.send("reply", id=ident, ok=True)
        elif op == "perform" and isinstance(obj.get("command"), str) and _strings(obj.get("args")):
            try:
                self.source.perform(Step(0, obj["command"], tuple(obj["args"])))
            except OSError as exc:
                filename = None if exc.filename is None else str(exc.filename)
                self.send("reply", id=ident, error=[exc.errno or errno.EIO, str(exc.strerror), filename])
            except Exception as exc:  # a request no caller of ours makes: refused, the agent goes on
                self.send("reply", id=ident, error=[errno.EINVAL, f"{type(exc).__name__}: {exc}", None])
            else:
                self.send("reply", id=ident, ok=True)
        elif op == "machine":
            self._machine(ident, obj)
        else:
            self.send("reply", id=ident, error=[errno.EINVAL, f"no such request: {raw[:80]!r}", None])

    def _machine(self, ident: Any, obj: dict[str, Any]) -> None:
        """``{"op": "machine", "method": NAME, "args": [...]}``: a call of the soak's machine
        (``mdtui.soak.remote.RemoteMachine``'s), made by a ``LiveMachine`` of this machine on a
        thread of its own (the soak calls from several threads at once: its races must race
        here too); its reply, when it returns, ``value`` (``persist.plain`` of the result) or
        ``error`` (an ``OSError``'s).  ``NAME`` is a public method of the soak's ``Machine``, or
        ``describe``: what the soak reads as attributes.  The machine is made on the first
        call, as ``mdtui soak --source live`` makes it: inside a rig (``$MDTUI_RIG_CONTROL``)
        running the design of its server, elsewhere as root."""
        from ..soak import machine as soak

        method, args = obj.get("method"), obj.get("args", [])
        public = {n for n, v in vars(soak.Machine).items() if callable(v) and not n.startswith("_")}
        if not isinstance(method, str) or method not in public | {"describe"} or not isinstance(args, list):
            self.send("reply", id=ident, error=[errno.EINVAL, f"no such machine call: {str(method)[:80]!r}", None])
            return
        if self.machine is None and method == "shutdown":
            self.send("reply", id=ident, ok=True, value=None)
            return
        if self.machine is None:
            try:
                if self.source.read_only:
                    raise OSError(errno.EROFS, "the agent runs read-only (--read-only): it drives no machine")
                rig = os.environ.get("MDTUI_RIG_CONTROL")
                self.machine = soak.live_machine(rig, soak.rig_variant() if rig else None)
            except OSError as exc:
                self.send("reply", id=ident, error=[exc.errno or errno.EIO, str(exc.strerror or exc), None])
                return
        thread = threading.Thread(target=self._call, args=(ident, self.machine, method, args), daemon=True)
        thread.start()

    def _call(self, ident: Any, machine: Any, method: str, args: list[Any]) -> None:
        """One machine call, on its thread; its reply (always one: its caller waits for it)."""
        try:
            if method == "shutdown":  # the soak is over: the agent reads the machine again
                self.shutdown()
                value: Any = None
            elif method == "describe":
                value = {
                    "source": machine.source,
                    "design": machine.design,
                    "kernel": machine.kernel,
                    "real": machine.real,
                    "rig": machine.rig is not None,
                }
            else:
                import inspect  # here: the agent of a dump never needs it

                self._check_machine_args(method, args)  # a close takes its fd off the list
                fn = getattr(machine, method)
                if method == "artifact" and len(args) == 2 and isinstance(args[1], list):
                    args = [args[0], OSError(*args[1])]  # the ioctl's failure: [errno, text]
                try:
                    inspect.signature(fn).bind(*args)
                except TypeError as exc:
                    raise OSError(errno.EINVAL, f"{method}: {exc}") from None
                result = fn(*args)
                if method == "open":
                    with self._fds_lock:
                        self._fds.add(result)
                value = persist.plain(result)
            reply = wire.line("reply", id=ident, ok=True, value=value)
        except OSError as exc:
            filename = None if exc.filename is None else str(exc.filename)  # a Path, from os.open(path)
            reply = wire.line("reply", id=ident, error=[exc.errno or errno.EIO, str(exc.strerror or exc), filename])
        except Exception as exc:  # a bug of the machine's (or a value JSON cannot carry): said, the agent goes on
            where = traceback.extract_tb(exc.__traceback__)[-1]
            text = f"{method}: {type(exc).__name__}: {exc} ({where.filename}:{where.lineno})"
            reply = wire.line("reply", id=ident, error=[errno.EIO, text, None])
        with self._sending:
            self._write(reply)

    def _check_machine_args(self, method: str, args: list[Any]) -> None:
        """Refuse what the soak never asks: an fd it did not open here (the agent's own
        descriptors: its input, its sockets), a name that is a path (sysfs paths are made
        from the names of drivers, interfaces and USB devices)."""
        with self._fds_lock:  # taken off before the close: another thread's open may get its number next
            if method in FD_METHODS and (not args or args[0] not in self._fds):
                raise OSError(errno.EBADF, f"{method}: not a file the soak opened here: {args[:1]!r:.40}")
            if method == "close":
                self._fds.discard(args[0])
        if method in NAME_METHODS and any(isinstance(a, str) and ("/" in a or a in (".", "..")) for a in args):
            raise OSError(errno.EINVAL, f"{method}: a name, not a path: {args!r:.80}")

    def shutdown(self) -> None:
        """The soak's machine shut down (its kernel log closed), if there is one."""
        machine, self.machine = self.machine, None
        if machine is not None:
            machine.shutdown()

    def run(self) -> int:
        self.source.start()
        self.hello()
        self.update()
        while True:
            fds = self.source.filenos()
            readable, _, _ = select.select([IN, *fds], [], [])
            if IN in readable:
                data = os.read(IN, 1 << 16)
                if not data:
                    return 0
                self.requests(data)
            if any(fd in readable for fd in fds):
                self._drain_burst(fds)
            self.update()

    def _drain_burst(self, fds: list[int]) -> None:
        end = time.monotonic() + BURST
        self.source.handle_readable()
        while time.monotonic() < end and select.select(fds, [], [], QUIET)[0]:
            self.source.handle_readable()


def _user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _event(e: Event) -> list:
    return [e.seq, e.time, e.kind, e.level, e.device, e.text, dict(e.fields)]


def _write_all(data: bytes) -> None:
    """All of ``data`` to standard output; a reader that went away ends the agent."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(OUT, view) :]
        except BrokenPipeError:
            raise SystemExit(0) from None


def main(options: dict[str, Any]) -> None:
    """The agent's entry point, as ``pack`` calls it: ``read_only`` and ``exact``."""
    source = LiveSource(
        monitor_factory=NetlinkMonitor,
        read_only=bool(options.get("read_only")),
        exact=bool(options.get("exact")),
        clock=time.monotonic,
    )
    agent = Agent(source)
    try:
        status = agent.run()
    except KeyboardInterrupt:
        status = 130
    finally:
        agent.shutdown()
        source.stop()
    sys.exit(status)
