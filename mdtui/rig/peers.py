"""Which client processes still hold their /dev/mediaN open, seen from the rig's side.

The kernel releases an open file when its last descriptor goes: at close(), or at exit,
however the process ends (``do_exit()`` closes its files before the parent can reap it).
In the testbed, each open of /dev/mediaN is one connection to umockdev's ioctl socket, made
by umockdev's preload in the client and not marked close-on-exec, so the connection lives
exactly as long as the client's file does: inherited across fork() and closed at exit like
it.  umockdev's own ``connected`` flag follows it only while umockdev is reading the
connection: a client killed in the middle of an ioctl leaves it set for ever (umockdev 0.17
stops reading after a failed reply and never closes its end).

So the rig keeps a duplicate of its end of each connection and asks the kernel: ``POLLHUP``
on it means every process holding the client's end has closed it or exited.  umockdev does
not expose the connection; ``PeerFinder.claim()`` finds it in ``/proc/self/fd`` when the
client connects: the one connected socket bound to that node's ioctl path that no earlier
client claimed (umockdev accepts and announces clients one at a time, on one thread).
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading


def hung_up(sock: socket.socket) -> bool:
    """Has every holder of the other end closed it (``POLLHUP`` on a Unix stream socket)?"""
    poller = select.poll()
    try:
        poller.register(sock.fileno(), select.POLLIN)
    except ValueError:  # already closed here
        return True
    return any(events & (select.POLLHUP | select.POLLERR | select.POLLNVAL) for _, events in poller.poll(0))


def _socket_inodes() -> dict[int, int]:
    """inode -> fd for every socket this process has open."""
    out = {}
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError, ValueError):
            target = os.readlink(f"/proc/self/fd/{name}")
            if target.startswith("socket:["):
                out[int(target[8:-1])] = int(name)
    return out


def _duplicate(fd: int, inode: int) -> socket.socket | None:
    """A socket object on a duplicate of ``fd``, if it still is the socket ``inode``."""
    try:
        dup = os.dup(fd)
    except OSError:
        return None
    if os.fstat(dup).st_ino != inode:
        os.close(dup)
        return None
    return socket.socket(fileno=dup)


def _is_client_of(sock: socket.socket, node: str) -> bool:
    """Is this an accepted connection on umockdev's ioctl socket for ``node``?"""
    try:
        if sock.family != socket.AF_UNIX or sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            return False
        name = sock.getsockname()
    except OSError:
        return False
    if isinstance(name, bytes):
        name = name.decode(errors="replace")
    return os.path.normpath(name).endswith("/ioctl" + node)


class PeerFinder:
    """Finds the rig's end of each new ioctl connection (see the module docstring)."""

    def __init__(self) -> None:
        self._seen: set[int] = set()
        self._lock = threading.Lock()

    def claim(self, node: str) -> socket.socket | None:
        """A duplicate of the connection a client of ``node`` just made, or None when it cannot
        be told apart (the rig then falls back on umockdev's ``connected``)."""
        with self._lock:
            current = _socket_inodes()
            found = []
            for inode, fd in current.items():
                if inode in self._seen:
                    continue
                sock = _duplicate(fd, inode)
                if sock is None:
                    continue
                if _is_client_of(sock, node):
                    found.append(sock)
                else:
                    sock.close()
                    self._seen.add(inode)
            self._seen = {inode for inode in self._seen if inode in current}
            self._seen.update(os.fstat(sock.fileno()).st_ino for sock in found)
            if len(found) == 1:
                return found[0]
            for sock in found:  # more than one unclaimed: none can be told apart, none is kept
                sock.close()
            return None
