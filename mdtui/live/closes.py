"""Seeing a close the kernel announces to no one but inotify: the watch on the files that keep
a media device's reference after their driver was unbound (issue #12).

The kernel sends no uevent when a process closes a device node or exits: an open ``/dev/video0``
that keeps au0828's reference (its deferred release) can go at any moment, unannounced.
Polling ``/proc`` for it would wake the machine for ever; instead each such file is watched
with inotify through its ``/proc/PID/fd/N`` link (``inotify_add_watch`` follows the link to
the open file's own inode, so this works for a node already removed from ``/dev``, bind
mounted or made in a container): ``IN_CLOSE_WRITE``/``IN_CLOSE_NOWRITE`` arrive when a
holder of that inode closes it, also when the process exits (its files are closed then), and
``IN_IGNORED`` when the inode is gone.  Nothing is watched, and nothing wakes, while no
reference is kept this way.

The kernel's ``__fput()`` notifies the close *before* it calls the driver's ``release``, so a
reader woken by the close can still find the reference held for a moment: the live source
reads again a few times, ever later, until it is gone (``LiveSource``'s settling).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import struct
from collections.abc import Iterable

IN_CLOSE_WRITE, IN_CLOSE_NOWRITE, IN_IGNORED = 0x8, 0x10, 0x8000
IN_NONBLOCK, IN_CLOEXEC = os.O_NONBLOCK, os.O_CLOEXEC
EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then the name)


class CloseWatch:
    """inotify on the files a set of ``/proc/PID/fd/N`` links point at; ``fileno()`` is
    readable when one of them was closed (or went)."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self._add = libc.inotify_add_watch
        self._add.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
        self._rm = libc.inotify_rm_watch
        self._rm.argtypes = (ctypes.c_int, ctypes.c_int)
        fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            code = ctypes.get_errno()
            raise OSError(code, f"inotify_init1: {os.strerror(code)}")
        self.fd = fd
        self._watches: dict[str, int] = {}  # path -> watch descriptor

    def fileno(self) -> int:
        return self.fd

    def watch(self, paths: Iterable[str]) -> list[str]:
        """Watch exactly ``paths`` from now on; the ones that could not be watched, with why
        (a file closed since the scan: ENOENT; out of watches: ENOSPC)."""
        wanted = set(paths)
        for path in set(self._watches) - wanted:
            self._rm(self.fd, self._watches.pop(path))  # EINVAL when the inode went: nothing to undo
        failed = []
        for path in sorted(wanted - set(self._watches)):
            wd = self._add(self.fd, os.fsencode(path), IN_CLOSE_WRITE | IN_CLOSE_NOWRITE)
            if wd < 0:
                code = ctypes.get_errno()
                failed.append(f"{path}: {errno.errorcode.get(code, code)}")
                continue
            self._watches[path] = wd
        return failed

    @property
    def watched(self) -> frozenset[str]:
        return frozenset(self._watches)

    def drain(self) -> set[str]:
        """Read every queued event; the watched paths whose file was closed or went.  Inodes
        that went are forgotten (their watch descriptors are freed by the kernel)."""
        seen: set[str] = set()
        while True:
            try:
                data = os.read(self.fd, 64 * 1024)
            except BlockingIOError:
                return seen
            if not data:
                return seen
            paths = {wd: p for p, wd in self._watches.items()}
            gone = set()
            for offset in _offsets(data):
                wd, mask, _cookie, _length = EVENT.unpack_from(data, offset)
                if wd in paths:
                    seen.add(paths[wd])
                if mask & IN_IGNORED:
                    gone.add(wd)
            if gone:
                self._watches = {p: wd for p, wd in self._watches.items() if wd not in gone}

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
            self._watches.clear()


def _offsets(data: bytes) -> Iterable[int]:
    offset = 0
    while offset + EVENT.size <= len(data):
        yield offset
        offset += EVENT.size + EVENT.unpack_from(data, offset)[3]
