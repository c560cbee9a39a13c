"""``KernelView``: the simulated kernel as a program outside it reads it (``Kernel.view``).

The rest of this package is the kernel's inside; this is its one read side.  Each call takes
a consistent copy of one table, as reading the file a real kernel shows for it would, and
returns records (or the kernel's own objects, which a reader must not change):

* ``media_devices()``: every media device, with what the allocator keeps about it (its
  ``media_device_instance``: kref count, owner module and that module's refcnt), which only
  the kernel's memory holds; ``media_nodes()``: the registered ones by ``/dev/mediaN``;
* ``holders()``: who holds a reference on which media device, and why (the drivers' state);
* ``devices()``, ``device_nodes()``: ``/sys/devices`` and ``/dev``;
* ``usb_devices()``, ``usb_drivers()``: ``/sys/bus/usb/devices`` and ``/sys/bus/usb/drivers``;
* ``modules()``, ``builtin_modules()``: ``/sys/module``;
* ``open_files()``, ``open_file(fd)``: the file table (what ``/proc/*/fd`` would show).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from .mc.devnode import MediaDevnode
from .mc_dev_allocator import InstanceMediaDevice

if TYPE_CHECKING:
    from .device import Device
    from .drivers import Holder
    from .files import File
    from .kernel import Kernel
    from .mc.device import MediaDevice
    from .task import Task
    from .usb import UsbDevice


class MediaDeviceState(NamedTuple):
    """One media device and, when it was allocated through ``media_device_usb_allocate()``
    (``shared``), its ``media_device_instance``: ``kref_read(&mdi->refcount)``, the owner
    module's name (None when built in) and ``/sys/module/<owner>/refcnt`` (None when no module
    of that name is loaded).  A media device a driver owns alone (uvcvideo) has none of them."""

    mdev: MediaDevice
    shared: bool
    refcount: int | None
    owner: str | None
    owner_refcnt: int | None


class ModuleState(NamedTuple):
    """``/sys/module/NAME``: ``refcnt``, ``initstate`` and the names in ``holders/`` (the
    loaded modules that depend on it)."""

    name: str
    refcnt: int
    initstate: str
    holders: tuple[str, ...]


class OpenFile(NamedTuple):
    """An open file as ``/proc/PID/fd/FD`` shows it: its fd, the node's path as ``readlink``
    gives it (`` (deleted)`` appended once the node is gone from ``/dev``: ``d_path()`` of an
    unlinked dentry), that node's ``dev_t``, the media device it was opened on when it is a
    ``/dev/mediaN`` (``private_data``'s ``media_devnode->media_dev``: still that device once it
    is unregistered), the process holding it, when it was opened, and its access mode."""

    fd: int
    path: str
    devt: tuple[int, int] | None
    media_dev: MediaDevice | None
    task: Task
    opened_at: float
    mode: str = "rw"


class KernelView:
    """Read-only access to one ``Kernel``."""

    def __init__(self, kernel: Kernel) -> None:
        self._k = kernel

    # -- media devices ---------------------------------------------------------------------

    def media_devices(self) -> list[MediaDeviceState]:
        """Every media device that exists: the allocator's instances (registered or not) in
        list order, then the other registered ones (those drivers own themselves)."""
        k = self._k
        mdevs: list[MediaDevice] = [inst.mdev for inst in k.allocator.instances()]
        listed = {id(m) for m in mdevs}
        mdevs += [m for m in list(k.media_bus.live.values()) if id(m) not in listed]
        return [self._state(m) for m in mdevs]

    def _state(self, mdev: MediaDevice) -> MediaDeviceState:
        if not isinstance(mdev, InstanceMediaDevice):
            return MediaDeviceState(mdev, False, None, None, None)
        inst = mdev.instance
        owner = inst.owner
        module = self._k.loader.modules.get(owner) if owner is not None else None
        refcnt = module.refcnt if module is not None else None
        return MediaDeviceState(mdev, True, inst.refcount.refcount, owner, refcnt)

    def media_nodes(self) -> dict[str, MediaDevice]:
        """The registered media devices by their ``/dev/mediaN``."""
        return {mdev.devnode.device.node: mdev for mdev in list(self._k.media_bus.live.values()) if mdev.devnode}

    def holders(self) -> list[tuple[MediaDevice, Holder]]:
        """Each reference a driver holds on a media device, with why (ours: the kernel keeps
        no such list; each driver's private state says it)."""
        return [pair for drv in list(self._k.loader.drivers.values()) for pair in drv.holders()]

    # -- devices ---------------------------------------------------------------------------

    def devices(self) -> list[Device]:
        """The registered devices (``/sys/devices``), parents before children."""
        return list(self._k.devices.devices.values())

    def device_nodes(self) -> dict[str, Device]:
        """``/dev``: each node path and the device behind it (its ``devt``, ``devpath``...)."""
        return dict(self._k.devices.nodes)

    def uapi_nodes(self) -> list[str]:
        """The /dev nodes that answer a program's ioctls (their ``unlocked_ioctl``)."""
        return self._k.files.uapi_nodes()

    def usb_devices(self) -> list[UsbDevice]:
        """The plugged USB devices (not root hubs), by bus and port."""
        return list(self._k.usb.devices())

    def usb_drivers(self) -> dict[str, str | None]:
        """The registered USB drivers and the module each lives in (None when built in)."""
        return {name: drv.module_name for name, drv in list(self._k.usb.drivers.items())}

    # -- modules ---------------------------------------------------------------------------

    def modules(self) -> list[ModuleState]:
        """The loaded modules, in load order."""
        loaded = list(self._k.loader.modules.values())
        return [
            ModuleState(m.name, m.refcnt, m.state.value, tuple(u.name for u in loaded if m.name in u.deps))
            for m in loaded
        ]

    def builtin_modules(self) -> frozenset[str]:
        """The drivers built into the kernel: no ``struct module``, no refcnt."""
        return self._k.loader.builtin

    # -- open files ------------------------------------------------------------------------

    def open_files(self) -> list[OpenFile]:
        nodes = self._k.devices.nodes
        return [_open_file(f, nodes) for f in self._k.files.open_files()]

    def open_file(self, fd: int) -> OpenFile | None:
        file = self._k.files.lookup(fd)
        return _open_file(file, self._k.devices.nodes) if file is not None else None


def _open_file(file: File, nodes: dict[str, Device]) -> OpenFile:
    devnode = file.private
    media_dev = devnode.media_dev if isinstance(devnode, MediaDevnode) else None
    path = file.path if nodes.get(file.path) is file.device else f"{file.path} (deleted)"
    return OpenFile(file.fd, path, file.device.devt, media_dev, file.task, file.opened_at)
