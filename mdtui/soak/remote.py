"""``mdtui soak --source ssh:HOST``: the machine is the target's, the soak is ours.

The scenarios, the verdict and the report run here; every call of the ``Machine`` interface
goes to the remote agent (mdtui/remote/agent.py), where a ``LiveMachine`` of the target
makes it: its sysfs writes, its ``open()`` and ``ioctl()``, its kmod tools (or its rig's
control socket), its kernel log.  Nothing of ``LiveMachine`` is copied here.

The wire (``RemoteSource.call``): ``{"op": "machine", "method": NAME, "args": [...]}``,
answered with ``{"value": ...}`` (``persist.plain`` of the result: a snapshot is decoded
with ``persist.decode``, evidence, ``[kind, text]`` each, back into ``Evidence``) or an ``error`` ``[errno, text,
filename]``, raised here as the ``OSError`` the target's machine raised.  ``describe``
(not a ``Machine`` method) gives what the soak reads as attributes: source, design,
kernel, real, and whether the target is a rig.

The soak calls from several threads at once (its open loops race its bind/unbind loop):
the agent makes each call on a thread of its own, so they race there too.  A connection
lost meanwhile ends the soak's use of the target: the agent that held its files and read
its kernel log went with it, and a new one would not have seen what happened in between,
so every later call fails (ENOTCONN) rather than go to another agent.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Any

from .. import persist
from ..model import SystemSnapshot
from ..sources.remote import RemoteSource
from .machine import Evidence, Machine

#: the longest one call may take: kmod's rmmod and modprobe get 120 s on the target
CALL_TIMEOUT = 150.0


class RemoteMachine(Machine):
    """The ``LiveMachine`` of ``remote``'s host, through its agent (connected: ``ready``).
    ``OSError`` when the target cannot be soaked (not root there, no kernel log)."""

    def __init__(self, remote: RemoteSource, timeout: float = CALL_TIMEOUT) -> None:
        self.remote = remote
        self.host = remote.name
        self.timeout = timeout
        self._connection = remote.connections
        info = self._call(
            "describe", convert=lambda v: (bool(v["rig"]), bool(v["real"]), str(v["design"]), str(v["kernel"]))
        )
        #: the target is a rig (``$MDTUI_RIG_CONTROL`` there): no real hardware is touched
        self.rig, self.real, self.design, kernel = info
        self.kernel = f"{self.host}, {kernel}"
        self.source = f"ssh:{self.host}" + (" (rig)" if self.rig else "")

    def _call(self, method: str, *args: Any, convert: Callable[[Any], Any] = lambda value: value) -> Any:
        """The call on the target; its value as ``convert`` makes it, or EPROTO when the
        agent answered with something else (the soak takes only ``OSError`` for a refusal)."""
        if self.remote.connections != self._connection:
            raise OSError(
                errno.ENOTCONN,
                f"{self.host}: the connection was lost during the soak (the agent that held its files "
                "and read its kernel log went with it)",
            )
        value = self.remote.call("machine", self.timeout, method=method, args=list(args))
        try:
            return convert(value)
        except (TypeError, ValueError, KeyError, IndexError) as exc:  # persist.FormatError is a ValueError
            raise OSError(errno.EPROTO, f"{self.host}: {method}: the agent answered {value!r:.60} ({exc})") from None

    def snapshot(self) -> SystemSnapshot:
        return self._call("snapshot", convert=persist.decode)

    def bind(self, driver: str, interface: str) -> None:
        self._call("bind", driver, interface)

    def unbind(self, driver: str, interface: str) -> None:
        self._call("unbind", driver, interface)

    def rmmod(self, module: str) -> None:
        self._call("rmmod", module)

    def modprobe(self, module: str) -> None:
        self._call("modprobe", module)

    def unplug(self, usb: str) -> None:
        self._call("unplug", usb)

    def plug(self, usb: str, catalog: str | None) -> None:
        self._call("plug", usb, catalog)

    def open(self, path: str, comm: str) -> int:
        return self._call("open", path, comm, convert=_int)

    def device_info(self, fd: int) -> str:
        return self._call("device_info", fd, convert=str)

    def querycap(self, fd: int) -> str:
        return self._call("querycap", fd, convert=str)

    def close(self, fd: int) -> None:
        self._call("close", fd)

    def video_node(self, interface: str) -> str | None:
        node = self._call("video_node", interface)
        return None if node is None else str(node)

    def media_nodes(self) -> list[str]:
        return self._call("media_nodes", convert=lambda nodes: [str(n) for n in nodes])

    def evidence(self) -> list[Evidence]:
        return self._call("evidence", convert=_evidence)

    def invariants(self) -> list[Evidence]:
        return self._call("invariants", convert=_evidence)

    def artifact(self, fd: int, exc: OSError) -> str | None:
        why = self._call("artifact", fd, [exc.errno, exc.strerror])
        return None if why is None else str(why)

    def notes(self) -> list[str]:
        try:
            notes = self._call("notes", convert=lambda found: [str(n) for n in found])
        except OSError as exc:
            notes = [f"{self.host}: could not ask for the target's notes: {exc.strerror}"]
        if self.remote.connections != self._connection:
            notes.append(f"{self.host}: the connection was lost during the soak: the steps after it were not made")
        return notes

    def shutdown(self) -> None:
        """End the agent (its machine is shut down as it exits: the kernel log closed, the
        files it held closed)."""
        self.remote.stop()


def _int(value: Any) -> int:
    if type(value) is not int:
        raise TypeError(f"expected an fd, got {type(value).__name__}")
    return value


def _evidence(value: Any) -> list[Evidence]:
    """``Evidence`` back from its JSON: ``[kind, text]`` (a NamedTuple in a list, as
    ``json`` writes it), or ``{"kind", "text"}`` (as ``persist.plain`` writes one)."""
    if not isinstance(value, list):
        raise OSError(errno.EPROTO, f"evidence is a list, not {value!r:.80}")
    out = []
    for e in value:
        if isinstance(e, dict) and {"kind", "text"} <= e.keys():
            out.append(Evidence(str(e["kind"]), str(e["text"])))
        elif isinstance(e, list) and len(e) == 2:
            out.append(Evidence(str(e[0]), str(e[1])))
        else:
            raise OSError(errno.EPROTO, f"evidence is a kind and a text, not {e!r:.80}")
    return out
