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
``echo 'file mc-dev-allocator.c +p' > /sys/kernel/debug/dynamic_debug/control``.
"""

from __future__ import annotations

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


def enable(debugfs: Path = Path("/sys/kernel/debug")) -> str | None:
    """Switch the allocator's debug messages on; None on success, else why not."""
    control = debugfs / "dynamic_debug" / "control"
    try:
        with open(control, "w") as f:
            f.write("file mc-dev-allocator.c +p\n")
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM):
            return f"exact mode needs root ({control}: {exc.strerror})"
        return f"exact mode needs dynamic debug on a mounted debugfs ({control}: {exc.strerror})"
    return None


def parse_record(record: bytes) -> str | None:
    """The message of one /dev/kmsg record ("prio,seq,usec,flags;message\\n KEY=value...")."""
    _, sep, rest = record.decode("utf-8", "replace").partition(";")
    return rest.split("\n", 1)[0] if sep else None


@dataclass
class Tracked:
    refcount: int
    owner: str
    anomalies: list[str] = field(default_factory=list)


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
        """The owner's own media_device_delete(), which mainline does not log."""
        t = self.devices.get(dev)
        if t is not None and t.refcount > 0:
            t.refcount -= 1


class KmsgReader:
    """Non-blocking /dev/kmsg from its end: only what is logged from now on."""

    def __init__(self, path: str = "/dev/kmsg") -> None:
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        os.lseek(self.fd, 0, os.SEEK_END)

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
                    continue
                raise
            if not record:
                return out
            message = parse_record(record)
            if message is not None:
                out.append(message)

    def close(self) -> None:
        os.close(self.fd)
