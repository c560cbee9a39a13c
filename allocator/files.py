"""Open files on device nodes: ``open``/``close``/``ioctl`` as the VFS routes them.

``chrdev_open`` pins the modules behind a node before the driver's open runs (the cdev owner
and the ``file_operations`` owner, ``try_module_get`` each; a failure is ENXIO) and drops them
after the last ``release``: this is why an open ``/dev/video0`` makes ``rmmod au0828`` fail.
A node removed from ``/dev`` can no longer be opened (ENOENT), but files already open keep
their operations and whatever objects those hold (the deferred releases).  Each file keeps
whose it is (``allocator.task``), when it was opened and its access mode, as ``/proc/PID/fd``
and ``fdinfo`` show them; every open here is ``O_RDWR``, as V4L2, DVB and ALSA programs open.
"""

from __future__ import annotations

import errno
import itertools
import os
import threading
from collections.abc import Callable
from typing import Any

from .device import Device, DeviceCore
from .errors import KernelError
from .module import Module, module_put, try_module_get
from .task import COMM_MAX, SHELL, Task, TaskTable


class File:
    """``struct file``: what the driver's open stored lives in ``private``; ``task`` is the
    process whose fd it is, ``opened_at`` the kernel's clock at ``open()``."""

    __slots__ = ("device", "fd", "fops", "opened_at", "path", "pins", "private", "task")

    def __init__(
        self, fd: int, device: Device, fops: Fops, pins: tuple[Module | None, ...], task: Task, opened_at: float
    ) -> None:
        self.fd = fd
        self.device = device
        self.path = device.node
        self.fops = fops
        self.pins = pins
        self.task = task
        self.opened_at = opened_at
        self.private: Any = None


class Fops:
    """``struct file_operations`` of one node, plus the modules an open pins.  ``ioctl`` takes
    the simulation's own calls by request name; ``unlocked_ioctl`` a program's numbers and
    bytes (``allocator.chrdev``), None where the node answers none."""

    __slots__ = ("ioctl", "open", "owners", "release", "unlocked_ioctl")

    def __init__(
        self,
        owners: tuple[Module | None, ...],
        open: Callable[[File], None] | None = None,
        release: Callable[[File], None] | None = None,
        ioctl: Callable[[File, str], Any] | None = None,
        unlocked_ioctl: Callable[..., Any] | None = None,
    ) -> None:
        self.owners = owners
        self.open = open
        self.release = release
        self.ioctl = ioctl
        self.unlocked_ioctl = unlocked_ioctl


class FileTable:
    def __init__(self, core: DeviceCore, clock: Callable[[], float]) -> None:
        self._core = core
        self._clock = clock
        self.tasks = TaskTable()
        self._lock = threading.Lock()
        self._fops: dict[str, Fops] = {}
        self._fds = itertools.count(3)
        self.files: dict[int, File] = {}

    def register(self, dev: Device, fops: Fops) -> None:
        with self._lock:
            self._fops[dev.devpath] = fops

    def open(self, path: str, comm: str = SHELL) -> int:
        """``open(path, O_RDWR)`` in the process named ``comm`` (started by its first open)."""
        with self._lock:
            dev = self._core.nodes.get(path)
            fops = self._fops.get(dev.devpath) if dev is not None else None
        if dev is None or fops is None:
            raise KernelError(errno.ENOENT, f"open {path}: {os.strerror(errno.ENOENT)}", path)
        pinned: list[Module | None] = []
        for owner in fops.owners:
            if not try_module_get(owner):
                for m in pinned:
                    module_put(m)
                raise KernelError(errno.ENXIO, f"open {path}: {os.strerror(errno.ENXIO)}", path)
            pinned.append(owner)
        file = File(next(self._fds), dev, fops, tuple(pinned), self.tasks.get(comm), self._clock())
        try:
            if fops.open is not None:
                fops.open(file)
        except KernelError as exc:
            for m in pinned:
                module_put(m)
            raise KernelError(exc.errno or errno.EIO, f"open {path}: {exc.strerror}", path) from exc
        with self._lock:
            self.files[file.fd] = file
        return file.fd

    def close(self, fd: int | str, comm: str | None = None) -> None:
        """Close an fd, or the oldest open file on a node path (a script's ``close NODE``),
        of the process named ``comm`` when one is given."""
        with self._lock:
            if isinstance(fd, str):
                fd = next(
                    (
                        n
                        for n, f in self.files.items()
                        if f.path == fd and (comm is None or f.task.comm == comm[:COMM_MAX])
                    ),
                    fd,
                )
            file = self.files.pop(fd, None) if isinstance(fd, int) else None
        if file is None:
            raise KernelError(errno.EBADF, f"close {fd}: {os.strerror(errno.EBADF)}", str(fd))
        if file.fops.release is not None:
            file.fops.release(file)
        for m in file.pins:
            module_put(m)

    def lookup(self, fd: int) -> File | None:
        """The open file behind ``fd`` (``fdget()``), None when nothing is open there."""
        with self._lock:
            return self.files.get(fd)

    def ioctl(self, fd: int, request: str) -> Any:
        file = self.lookup(fd)
        if file is None:
            raise KernelError(errno.EBADF, f"ioctl {fd}: {os.strerror(errno.EBADF)}")
        if file.fops.ioctl is None:
            raise KernelError(errno.ENOTTY, f"{request} on {file.path}: {os.strerror(errno.ENOTTY)}", file.path)
        return file.fops.ioctl(file, request)

    def uapi_nodes(self) -> list[str]:
        """The /dev nodes whose file operations answer a program's ioctls (``unlocked_ioctl``)."""
        with self._lock:
            devpaths = {path for path, fops in self._fops.items() if fops.unlocked_ioctl is not None}
        return sorted(node for node, dev in list(self._core.nodes.items()) if dev.devpath in devpaths)

    def open_files(self) -> list[File]:
        with self._lock:
            return list(self.files.values())


def enotty(file: File, request: str) -> KernelError:
    return KernelError(errno.ENOTTY, f"{request} on {file.path}: {os.strerror(errno.ENOTTY)}", file.path)
