"""``/dev/mediaN``: the media bus, its minors and the devnode lifetime (mc-devnode.c).

Minors come from a 256-entry bitmap, first free (ENFILE when none).  Unregistering clears the
REGISTERED flag first (a new ``open`` then fails with ENXIO), removes the device from sysfs and
``/dev``, and drops the registration reference; the devnode, and with it its minor, is freed
only when the last open file is closed.  That is why, after an unbind with ``/dev/media0``
still open, the next registration gets ``media1``.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..device import Device, DeviceCore, MinorAllocator
from ..errors import KernelError
from ..events import Printk
from ..files import File, FileTable, Fops
from ..module import Module

if TYPE_CHECKING:
    from .device import MediaDevice

MEDIA_NUM_DEVICES = 256


class MediaDevnode:
    """``struct media_devnode``: what an open ``/dev/mediaN`` file keeps (``private_data``)."""

    __slots__ = ("_lock", "_minors", "device", "media_dev", "minor", "owner", "registered", "users")

    def __init__(
        self, media_dev: MediaDevice, minor: int, device: Device, owner: Module | None, minors: MinorAllocator
    ) -> None:
        self.media_dev = media_dev  # the media device this devnode was registered for
        self.minor = minor
        self.device = device
        self.owner = owner  # cdev.owner: the module that called media_device_register()
        self.registered = True
        self.users = 0
        self._minors = minors
        self._lock = threading.Lock()

    def get(self) -> None:
        """An ``open()``: ENXIO once unregistered, as ``media_open`` returns."""
        with self._lock:
            if not self.registered:
                raise KernelError(errno.ENXIO, f"open {self.device.node}: No such device or address")
            self.users += 1

    def put(self) -> None:
        """A ``close()`` or the registration reference: the last one frees the minor."""
        with self._lock:
            self.users -= 1
            freed = self.users < 0
        if freed:
            self._minors.put(self.minor)

    def unregister(self) -> None:
        with self._lock:
            self.registered = False


class MediaBus:
    """``media_devnode_init()``: the ``media`` bus with its dynamic char major and minors."""

    MAJOR = 237

    def __init__(
        self,
        core: DeviceCore,
        printk: Printk,
        files: FileTable,
        module: Callable[[str], Module | None],
        kernel_version: int,
    ) -> None:
        self.core = core
        self.printk = printk
        self.files = files
        self.module = module
        self.kernel_version = kernel_version
        self.minors = MinorAllocator(MEDIA_NUM_DEVICES)
        self.live: dict[int, MediaDevice] = {}  # registered media devices by minor

    def fops(self, devnode: MediaDevnode, ioctl: Callable[[str], Any]) -> Fops:
        """``media_devnode_fops``: open/release count users; an ioctl on an unregistered
        devnode is EIO, an unknown one ENOTTY (``__media_ioctl``)."""

        def do_open(file: File) -> None:
            devnode.get()
            file.private = devnode

        def do_ioctl(file: File, request: str) -> Any:
            if not devnode.registered:
                raise KernelError(errno.EIO, f"{request} on {file.path}: {os.strerror(errno.EIO)}", file.path)
            return ioctl(request)

        return Fops(
            (self.module("mc"), devnode.owner),
            open=do_open,
            release=lambda file: devnode.put(),
            ioctl=do_ioctl,
        )
