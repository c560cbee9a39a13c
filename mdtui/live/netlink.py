"""The kernel's uevents straight from netlink (``AF_NETLINK``, ``NETLINK_KOBJECT_UEVENT``),
with the standard library only: the remote agent's monitor, where pyudev is not installed.

The kernel multicasts each uevent to group 1 as ``ACTION@DEVPATH`` followed by NUL-separated
``KEY=value`` properties (lib/kobject_uevent.c).  A message in udev's format (a ``libudev``
header, then the properties: what udevd re-broadcasts, and what a umockdev testbed delivers)
is read too.  Only the subsystems ``monitor.SUBSYSTEMS`` names are kept, as the pyudev
monitor filters them.  ENOBUFS (the kernel dropped events in a storm) is raised to the caller,
which re-reads everything (``LiveSource._read_uevents``).
"""

from __future__ import annotations

import socket
import struct

from .monitor import SUBSYSTEMS

NETLINK_KOBJECT_UEVENT = 15  # <linux/netlink.h>
KERNEL_GROUP = 1  # the kernel's own multicast group (udevd's is 2)
RCVBUF = 4 << 20  # what udevd asks for: an unplug sends dozens of uevents at once
_LIBUDEV = b"libudev\0"
_LIBUDEV_HEADER = struct.Struct("=8sIIIIIIII")  # prefix, magic, header size, properties offset, length...


def parse(data: bytes) -> dict[str, str]:
    """One message's properties; {} for what is no uevent."""
    if data.startswith(_LIBUDEV):
        if len(data) < _LIBUDEV_HEADER.size:
            return {}
        offset, length = _LIBUDEV_HEADER.unpack_from(data)[3:5]
        body = data[offset : offset + length]
    else:
        head, sep, body = data.partition(b"\0")
        if not sep or b"@" not in head:
            return {}
    env = {}
    for item in body.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep and key:
            env[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
    return env if "ACTION" in env and "DEVPATH" in env else {}


class NetlinkMonitor:
    """The same surface as ``monitor.UdevMonitor``: ``fileno``, ``receive``, ``close``."""

    description = "events: kernel uevents (netlink)"

    def __init__(self) -> None:
        sock = socket.socket(
            socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT
        )
        try:
            try:
                sock.setsockopt(socket.SOL_SOCKET, 33, RCVBUF)  # SO_RCVBUFFORCE (root)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            sock.bind((0, KERNEL_GROUP))  # port id 0: the kernel picks one
        except OSError:
            sock.close()
            raise
        self._sock = sock

    def fileno(self) -> int:
        return self._sock.fileno()

    def receive(self) -> list[dict[str, str]]:
        out = []
        while True:
            try:
                data = self._sock.recv(1 << 16)
            except BlockingIOError:
                return out
            env = parse(data)
            if env.get("SUBSYSTEM") in SUBSYSTEMS:
                out.append(env)

    def close(self) -> None:
        self._sock.close()
