"""uevents for the programs inside a umockdev testbed, with every property the kernel sent.

umockdev's preload turns a program's NETLINK_KOBJECT_UEVENT socket into a Unix datagram
socket bound at ``$UMOCKDEV_DIR/eventN`` and reports what arrives there as coming from udev's
multicast group.  ``Testbed.uevent()`` sends only ACTION, DEVPATH, SUBSYSTEM, DEVNAME and
DEVTYPE, with its own SEQNUM, and only for a device still in the tree (it reads it back with
libudev).  The rig sends the simulation's own uevents instead, in the same wire format
(systemd's ``device_monitor_send_device()``: a "libudev" header, then NUL-separated
KEY=value properties), so a "remove" arrives after its device has left sysfs, as it does on
a real machine, and DRIVER, PRODUCT, MAJOR/MINOR and the kernel's SEQNUM come with it.

The header carries MurmurHash2 of SUBSYSTEM and DEVTYPE: libudev's socket filter (installed
by ``filter_by(subsystem)``) compares those, so they must be exact.
"""

from __future__ import annotations

import contextlib
import glob
import os
import queue
import socket
import struct
import threading
import time
from collections.abc import Mapping

UDEV_MONITOR_MAGIC = 0xFEEDCAFE
# prefix[8], magic, header_size, properties_off, properties_len, subsystem hash, devtype
# hash, tag bloom hi, lo: magic and hashes in network order, the rest native
_HEADER = struct.Struct("=8sIIIIIIII")


def murmur_hash2(text: str) -> int:
    """systemd's ``string_hash32()``: MurmurHash2, 32 bits, seeded with the length."""
    data = text.encode()
    m, r = 0x5BD1E995, 24
    h = len(data) & 0xFFFFFFFF
    body = len(data) - len(data) % 4
    for (k,) in struct.iter_unpack("<I", data[:body]):
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = data[body:]
    if tail:
        for i in reversed(range(len(tail))):
            h ^= tail[i] << (8 * i)
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def pack(env: Mapping[str, str]) -> bytes:
    """One message: the header, then the properties (ACTION, DEVPATH, SUBSYSTEM first)."""
    first = ("ACTION", "DEVPATH", "SUBSYSTEM")
    items = [(k, env[k]) for k in first if k in env] + [(k, v) for k, v in env.items() if k not in first]
    props = b"".join(f"{k}={v}".encode() + b"\0" for k, v in items)
    devtype = env.get("DEVTYPE")
    header = _HEADER.pack(
        b"libudev\0",
        socket.htonl(UDEV_MONITOR_MAGIC),
        _HEADER.size,
        _HEADER.size,
        len(props),
        socket.htonl(murmur_hash2(env.get("SUBSYSTEM", ""))),
        socket.htonl(murmur_hash2(devtype)) if devtype else 0,
        0,
        0,
    )
    return header + props


class Sender:
    """Delivers uevents to every listener in the testbed, in order, on its own thread.

    A Unix datagram socket queues only ``net.unix.max_dgram_qlen`` messages (10 here) where
    a netlink socket holds a few hundred KB, and an unplug sends a dozen uevents at once: a
    send to a full queue is retried (1 ms apart, up to ``patience`` seconds, then that
    listener misses the event, as an overrun netlink socket would) instead of dropped.  The
    caller never waits for a slow reader.  A listener that went away (its socket refuses) is
    cleaned up, as umockdev does."""

    def __init__(self, root: str, patience: float = 5.0) -> None:
        self.root = root
        self.patience = patience
        self._queue: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=self._run, name="uevents", daemon=True).start()

    def send(self, env: Mapping[str, str]) -> None:
        self._queue.put(pack(env))

    def drain(self) -> None:
        """Wait until everything queued so far has been delivered (or given up on)."""
        self._queue.join()

    def _run(self) -> None:
        while True:
            message = self._queue.get()
            for path in glob.glob(os.path.join(self.root, "event[0-9]*")):
                self._deliver(message, path)
            self._queue.task_done()

    def _deliver(self, message: bytes, path: str) -> None:
        deadline = time.monotonic() + self.patience
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK) as s:
            while True:
                try:
                    s.sendto(message, path)
                    return
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        return
                    time.sleep(0.001)
                except (ConnectionRefusedError, FileNotFoundError):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
                    return
