"""Exact mode: the allocator's own log lines, switched on through dynamic debug and followed
on /dev/kmsg.

mc-dev-allocator.c logs, with ``dev_dbg(&udev->dev, ...)``:
``__media_device_get: Allocated media device for owner M`` (refcount 1),
``__media_device_get: module M got owner reference`` (one more, for every later allocate),
``__media_device_get: module M get owner reference error`` (one more, no module reference),
``media_device_delete: module M put owner module reference`` (one less: a sharer's delete),
``media_device_instance_release: releasing Media Device`` (gone).
Mainline does not log the owner's own ``media_device_delete()``; that step is taken from
the owner driver's ``unbind`` uevent on the key device (``owner_unbound``), and a release
line always brings the count to 0.  Switching the messages on needs root and debugfs:
``echo 'file mc-dev-allocator.c +p' > /sys/kernel/debug/dynamic_debug/control``; the
``DebugSwitch`` remembers which call sites printed before and puts them back on stop.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

FUNCTIONS = "__media_device_get|media_device_delete|media_device_instance_release"
LINE = re.compile(rf"^(?P<bus>\S+) (?P<dev>\S+): (?P<fn>{FUNCTIONS}): (?P<msg>.*)$")
ALLOCATED = re.compile(r"Allocated media device for owner (?P<m>\S+)")
GOT = re.compile(r"module (?P<m>\S+) got owner reference")
GET_ERROR = re.compile(r"module (?P<m>\S+) get owner reference error")
PUT = re.compile(r"module (?P<m>\S+) put owner module reference")


ALLOCATOR_FILE = "mc-dev-allocator.c"
ENABLE = f"echo 'file {ALLOCATOR_FILE} +p' > /sys/kernel/debug/dynamic_debug/control"


@dataclass(frozen=True)
class Site:
    """One pr_debug/dev_dbg call site of the allocator, as a line of the control file shows
    it: ``drivers/media/mc/mc-dev-allocator.c:LINE [mc]__media_device_get =p "..."`` (flags
    after ``=``; ``_`` for none, ``p`` when it prints)."""

    line: int
    flags: str

    @property
    def printing(self) -> bool:
        return "p" in self.flags


def parse_sites(control: str) -> list[Site]:
    """The allocator's call sites in a dynamic_debug/control listing."""
    out = []
    for row in control.splitlines():
        fields = row.split()
        if len(fields) < 3 or row.startswith("#"):
            continue
        where, _, number = fields[0].rpartition(":")
        flags = next((f[1:] for f in fields[1:] if f.startswith("=")), None)
        if where.rsplit("/", 1)[-1] == ALLOCATOR_FILE and number.isdigit() and flags is not None:
            out.append(Site(int(number), flags))
    return out


class DebugSwitch:
    """The allocator's dynamic-debug lines, switched on for exact mode and put back as they
    were: the sites that did not print before are switched off again by ``restore()``
    (``file mc-dev-allocator.c line N -p``, one query per site; all of them at once when
    none printed).  Read-only, it writes nothing and exact mode works only when every site
    already prints."""

    def __init__(self, debugfs: Path = Path("/sys/kernel/debug")) -> None:
        self.control = debugfs / "dynamic_debug" / "control"
        self._switched: list[Site] = []  # the sites this switch turned on

    def enable(self, read_only: bool = False) -> str | None:
        """Make the allocator's lines print; None on success, else why exact mode is off."""
        sites, why = self._sites()
        if why is not None:
            return why
        off = [s for s in sites if not s.printing]
        if not off:
            return None
        if read_only:
            return f"exact mode off: --read-only, and the allocator's debug lines are off (as root: {ENABLE})"
        why = self._write([f"file {ALLOCATOR_FILE} +p"])
        if why is None:
            self._switched = off
        return why

    def restore(self) -> str | None:
        """Switch off what ``enable`` switched on; None on success, else why not."""
        if not self._switched:
            return None
        sites, _ = self._sites()
        if sites and len(self._switched) == len(sites):
            queries = [f"file {ALLOCATOR_FILE} -p"]
        else:
            queries = [f"file {ALLOCATOR_FILE} line {s.line} -p" for s in self._switched]
        why = self._write(queries)
        if why is None:
            self._switched = []
        return why

    @property
    def switched(self) -> bool:
        return bool(self._switched)

    def _sites(self) -> tuple[list[Site], str | None]:
        try:
            with open(self.control, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError as exc:
            return [], _why(exc, self.control)
        sites = parse_sites(text)
        if not sites:
            return [], (
                f"exact mode needs the allocator's debug lines, and {self.control} lists none "
                f"(CONFIG_DYNAMIC_DEBUG, and the mc module loaded?)"
            )
        return sites, None

    def _write(self, queries: list[str]) -> str | None:
        try:
            with open(self.control, "wb", buffering=0) as f:  # unbuffered: one query per write()
                for query in queries:
                    f.write(f"{query}\n".encode())
        except OSError as exc:
            return _why(exc, self.control)
        return None


def _why(exc: OSError, control: Path) -> str:
    code = exc.errno or errno.EIO
    detail = f"{control}: {os.strerror(code)} ({errno.errorcode.get(code, str(code))})"
    if code in (errno.EACCES, errno.EPERM):
        return f"exact mode needs root ({detail})"
    return f"exact mode needs dynamic debug on a mounted debugfs ({detail})"


def parse_record(record: bytes) -> str | None:
    """The message of one /dev/kmsg record ("prio,seq,usec,flags;message\\n KEY=value...")."""
    _, sep, rest = record.decode("utf-8", "replace").partition(";")
    return rest.split("\n", 1)[0] if sep else None


@dataclass
class Tracked:
    """What the allocator's lines say of one media device.  ``refcount`` still counts the
    owner's reference after its driver's unbind (``owner_unbound``): mainline logs no line
    for the owner's own media_device_delete(), and the owner may run it at the unbind or,
    when an open file keeps its reference (au0828's deferred release), at the last close;
    ``refcount_now()`` takes it off when nothing keeps it."""

    refcount: int
    owner: str
    anomalies: list[str] = field(default_factory=list)
    owner_unbound: bool = False

    def refcount_now(self, owner_kept: bool) -> int:
        """The count, the owner's reference taken off once its driver was unbound and no
        open file keeps it (``owner_kept``: the live source sees a deferred holder of it)."""
        return self.refcount - (self.owner_unbound and not owner_kept and self.refcount > 0)


class ExactTracker:
    """Reference counts per key USB device, from the allocator's lines."""

    def __init__(self) -> None:
        self.devices: dict[str, Tracked] = {}

    def apply(self, message: str) -> str | None:
        """Take one log message; returns the key device it changed, if any."""
        m = LINE.match(message)
        if m is None or m["bus"] != "usb":
            return None
        dev, msg = m["dev"], m["msg"]
        t = self.devices.get(dev)
        if (a := ALLOCATED.search(msg)) is not None:
            self.devices[dev] = Tracked(1, a["m"])
        elif t is None:
            return None  # started watching after this device was allocated
        elif GOT.search(msg):
            t.refcount += 1
        elif (e := GET_ERROR.search(msg)) is not None:
            t.refcount += 1
            t.anomalies.append(f"module {e['m']} holds a reference without one on {t.owner}")
        elif PUT.search(msg):
            t.refcount -= 1
        elif m["fn"] == "media_device_instance_release":
            del self.devices[dev]
        return dev

    def owner_unbound(self, dev: str) -> None:
        """The owner's driver was unbound: its own media_device_delete(), which mainline does
        not log, runs now or at the release of the last file keeping it (``Tracked``)."""
        t = self.devices.get(dev)
        if t is not None:
            t.owner_unbound = True


class KmsgReader:
    """Non-blocking /dev/kmsg from its end: only what is logged from now on."""

    def __init__(self, path: str = "/dev/kmsg") -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        os.lseek(self.fd, 0, os.SEEK_END)
        self.lost = 0  # overruns: records overwritten before they were read (EPIPE, once each)

    def fileno(self) -> int:
        return self.fd

    def messages(self) -> list[str]:
        out = []
        while True:
            try:
                record = os.read(self.fd, 8192)
            except BlockingIOError:
                return out
            except OSError as exc:
                if exc.errno == errno.EPIPE:  # records overwritten before we read them
                    self.lost += 1
                    continue
                raise
            if not record:
                return out
            message = parse_record(record)
            if message is not None:
                out.append(message)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)
