"""The Media Device Allocator API, as drivers/media/mc/mc-dev-allocator.c has it.

A global list of ``media_device_instance`` {mdev, owner, kref} under ``media_device_lock``,
keyed by the USB device (``&udev->dev``):

* ``media_device_usb_allocate(udev, module_name, owner)``: under the lock, find the instance
  for ``udev``.  Found: ``kref_get``; if the caller's module is not the owner,
  ``try_module_get(owner)``; a failure is logged with ``dev_err`` and the media device is
  handed out all the same (mainline does; the later ``module_put`` then has no get to match).
  Not found: allocate (ENOMEM -> error, nothing kept), ``kref_init``, append to the list.  The
  first caller initialises the device (``__media_device_usb_init``: driver name = its module).
* ``media_device_delete(mdev, module_name, owner)``: under the lock, ``module_put(owner)`` if
  the caller is not the owner; *then, outside the lock*, ``kref_put``.  The last put runs the
  release, which only then takes the lock to unregister, clean up and unlink the instance.

That last ordering is a window: between the final put and the release taking the lock, a
concurrent allocate still finds the instance and ``kref_get``s a zero count (refcount_t WARNs
"addition on 0; use-after-free" and the caller gets a device that is about to be freed).
The hook point ``release:before_lock`` sits in that window so a test can force it.
``variant="fixed"`` closes it by doing the put with ``kref_put_mutex`` (the 1 -> 0 transition
and the release happen under ``media_device_lock``); there the hook runs with the lock held.
It also closes the second hazard mainline leaves: a sharer whose ``try_module_get`` fails (the
owner module is being removed) gets ENODEV instead of a device whose owner module will be
freed under it (mainline's later ``module_put``, or an ``open`` of the devnode the owner
registered, then touches a freed module).

Each variant is a class of its own, written as its C reads: ``MediaDeviceAllocator`` is
mainline, ``FixedMediaDeviceAllocator`` the fix; ``Kernel(variant=...)`` picks one from
``VARIANTS`` when it is built.  Another variant is one more subclass and its entry there.

Deliberate difference: lookup goes through a dict keyed by the device as well as the list (the
kernel walks the list), so an allocate costs the same with 1 or 1,000 shared devices;
``lookup="scan"`` walks the list as the kernel does, for comparison.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable
from typing import Any

from .device import Device, dev_str
from .errors import KernelError
from .events import Printk
from .faults import FaultInjector
from .kref import Kref
from .mc.device import MediaDevice
from .mc.devnode import MediaBus
from .module import Module, module_put, try_module_get
from .mutex import Mutex
from .usb import UsbDevice

HOOK_POINTS = ("release:before_lock",)

Hook = Callable[["MediaDeviceInstance"], None]


class InstanceMediaDevice(MediaDevice):
    """The ``mdev`` embedded in a ``media_device_instance`` (what ``container_of`` finds)."""

    instance: MediaDeviceInstance


class MediaDeviceInstance:
    """``struct media_device_instance``.  ``released`` is ours: set once kfree'd."""

    __slots__ = ("_allocator", "key", "logdev", "mdev", "owner_module", "refcount", "released")

    def __init__(self, allocator: MediaDeviceAllocator, key: Device, owner: Module | None) -> None:
        self._allocator = allocator
        self.key = key
        self.logdev = logdev = dev_str(key)  # what dev_dbg(&udev->dev, ...) prefixes
        self.mdev = InstanceMediaDevice(allocator.bus)
        self.mdev.instance = self
        self.owner_module = owner
        warn = allocator._warn
        self.refcount = Kref(lambda text: warn(logdev, text))
        self.released = False

    @property
    def owner(self) -> str | None:
        """The owner module's name; None for a built-in driver (``THIS_MODULE`` is NULL)."""
        return self.owner_module.name if self.owner_module is not None else None

    def release(self, _kref: Kref) -> None:
        self._allocator._media_device_instance_release(self)

    def __repr__(self) -> str:
        return f"<media_device_instance {self.key.name} owner={self.owner} refcount={self.refcount.refcount}>"


class MediaDeviceAllocator:
    """mc-dev-allocator.c as mainline has it.  A variant is a subclass that overrides
    ``_media_device_get`` (``__media_device_get()``), ``media_device_delete`` and
    ``_media_device_instance_release`` as its C has them, listed in ``VARIANTS``; the
    helpers below are the steps every variant shares."""

    variant = "mainline"

    def __init__(
        self,
        bus: MediaBus,
        printk: Printk,
        faults: FaultInjector,
        warn: Callable[[str, str], None],
        lookup: str = "index",
    ) -> None:
        if lookup not in ("index", "scan"):
            raise ValueError(f"lookup must be 'index' or 'scan', not {lookup!r}")
        self.bus = bus
        self._log = printk
        self._warn = warn
        self._faults = faults
        self.media_device_lock: Any = threading.Lock()
        self.media_device_list: list[MediaDeviceInstance] = []
        self._index: dict[int, MediaDeviceInstance] = {}
        self._find = self._find_indexed if lookup == "index" else self._find_scan
        self.hooks: dict[str, Hook] = {}

    def count_waiters(self) -> Mutex:
        """Swap in a ``Mutex`` that counts the threads blocked on it, so a test can tell when
        a racing thread is parked on ``media_device_lock``.  Call it while nobody holds the
        lock; the plain lock stays the default because it is cheaper."""
        self.media_device_lock = Mutex("media_device_lock")
        return self.media_device_lock

    def instances(self) -> list[MediaDeviceInstance]:
        with self.media_device_lock:
            return list(self.media_device_list)

    def set_hook(self, point: str, hook: Hook | None) -> None:
        if point not in HOOK_POINTS:
            raise ValueError(f"unknown hook point {point!r}; known: {', '.join(HOOK_POINTS)}")
        if hook is None:
            self.hooks.pop(point, None)
        else:
            self.hooks[point] = hook

    # -- lookup ----------------------------------------------------------------------------

    def _find_indexed(self, dev: Device) -> MediaDeviceInstance | None:
        return self._index.get(id(dev))

    def _find_scan(self, dev: Device) -> MediaDeviceInstance | None:
        for mdi in self.media_device_list:
            if mdi.key is dev:
                return mdi
        return None

    # -- the API, as mainline has it -------------------------------------------------------

    def _media_device_get(self, dev: Device, module_name: str, owner: Module | None) -> MediaDeviceInstance | None:
        """``__media_device_get()``; callers hold ``media_device_lock``.  A sharer takes the
        kref first; a failed ``try_module_get()`` of the owner is only logged, and the
        device handed out all the same."""
        mdi = self._find(dev)
        if mdi is None:
            return self._media_device_instance_alloc(dev, module_name, owner)
        mdi.refcount.kref_get()
        if owner is not mdi.owner_module and not self._try_module_get(mdi.owner_module):
            self._log.dev_err(mdi.logdev, f"__media_device_get: module {module_name} get owner reference error")
        else:
            self._log.dev_dbg(mdi.logdev, f"__media_device_get: module {module_name} got owner reference")
        return mdi

    def media_device_usb_allocate(self, udev: UsbDevice, module_name: str, owner: Module | None) -> MediaDevice:
        with self.media_device_lock:
            mdi = self._media_device_get(udev, module_name, owner)
            if mdi is None:
                raise KernelError(errno.ENOMEM, f"media_device_usb_allocate: {os.strerror(errno.ENOMEM)}", udev.name)
            mdev = mdi.mdev
            if mdev.dev is None:  # only the first caller initialises it
                mdev.media_device_usb_init(udev, udev.product, module_name)
            return mdev

    def media_device_delete(self, mdev: MediaDevice, module_name: str, owner: Module | None) -> None:
        """The owner reference is put under the lock; the kref, outside it."""
        mdi = self._put_owner_reference(mdev, module_name, owner)
        mdi.refcount.kref_put(mdi.release)

    def _media_device_instance_release(self, mdi: MediaDeviceInstance) -> None:
        """The last kref is gone: take the lock (a window before it, see the module's
        docstring), unregister, clean up, unlink."""
        self._releasing(mdi)
        with self.media_device_lock:
            self._media_device_instance_free(mdi)

    # -- what every variant does the same way ----------------------------------------------

    def _media_device_instance_alloc(
        self, dev: Device, module_name: str, owner: Module | None
    ) -> MediaDeviceInstance | None:
        """``__media_device_get()`` finding nothing: ``kzalloc``, ``kref_init``, ``list_add_tail``
        (None when the allocation fails)."""
        if self._faults.should_fail("kzalloc"):
            return None
        mdi = MediaDeviceInstance(self, dev, owner)
        self.media_device_list.append(mdi)
        self._index[id(dev)] = mdi
        self._log.dev_dbg(mdi.logdev, f"__media_device_get: Allocated media device for owner {module_name}")
        return mdi

    def _try_module_get(self, module: Module | None) -> bool:
        """``try_module_get()``, which a test can make fail (``FaultInjector``)."""
        if module is not None and self._faults.armed and self._faults.should_fail("try_module_get"):
            return False
        return try_module_get(module)

    def _put_owner_reference(self, mdev: MediaDevice, module_name: str, owner: Module | None) -> MediaDeviceInstance:
        """The first half of ``media_device_delete()``: ``container_of``, then, under the lock,
        ``module_put(mdi->owner)`` if the caller is not the owner."""
        mdi = mdev.instance  # type: ignore[attr-defined]  # container_of()
        with self.media_device_lock:
            if mdi.owner_module is not owner:
                module_put(mdi.owner_module)
                self._log.dev_dbg(mdi.logdev, f"media_device_delete: module {module_name} put owner module reference")
        return mdi

    def _releasing(self, mdi: MediaDeviceInstance) -> None:
        """The start of ``media_device_instance_release()``: its debug line, then the test hook."""
        self._log.dev_dbg(mdi.logdev, "media_device_instance_release: releasing Media Device")
        hook = self.hooks.get("release:before_lock")
        if hook is not None:
            hook(mdi)

    def _media_device_instance_free(self, mdi: MediaDeviceInstance) -> None:
        """The release under ``media_device_lock``: unregister, clean up, ``list_del``, kfree."""
        mdi.mdev.media_device_unregister()
        mdi.mdev.media_device_cleanup()
        self.media_device_list.remove(mdi)
        if self._index.get(id(mdi.key)) is mdi:
            del self._index[id(mdi.key)]
        mdi.released = True


class FixedMediaDeviceAllocator(MediaDeviceAllocator):
    """Mainline with both hazards closed: a sharer gets the owner's module reference before the
    kref, or ENODEV; the last kref is put with ``kref_put_mutex()``, so the 1 -> 0 transition
    and the release run under ``media_device_lock``."""

    variant = "fixed"

    def _media_device_get(self, dev: Device, module_name: str, owner: Module | None) -> MediaDeviceInstance | None:
        mdi = self._find(dev)
        if mdi is None:
            return self._media_device_instance_alloc(dev, module_name, owner)
        if owner is not mdi.owner_module and not self._try_module_get(mdi.owner_module):
            self._log.dev_err(mdi.logdev, f"__media_device_get: module {module_name} get owner reference error")
            raise KernelError(errno.ENODEV, f"owner module {mdi.owner} is going away", dev.name)
        mdi.refcount.kref_get()
        self._log.dev_dbg(mdi.logdev, f"__media_device_get: module {module_name} got owner reference")
        return mdi

    def media_device_delete(self, mdev: MediaDevice, module_name: str, owner: Module | None) -> None:
        mdi = self._put_owner_reference(mdev, module_name, owner)
        mdi.refcount.kref_put_mutex(mdi.release, self.media_device_lock)

    def _media_device_instance_release(self, mdi: MediaDeviceInstance) -> None:
        """Called by ``kref_put_mutex()`` with ``media_device_lock`` held."""
        self._releasing(mdi)
        self._media_device_instance_free(mdi)


#: every allocator the simulated kernel can run, by the name ``Kernel(variant=...)`` takes
VARIANTS: dict[str, type[MediaDeviceAllocator]] = {
    MediaDeviceAllocator.variant: MediaDeviceAllocator,
    FixedMediaDeviceAllocator.variant: FixedMediaDeviceAllocator,
}


def allocator_class(variant: str) -> type[MediaDeviceAllocator]:
    """The allocator of ``variant`` (ValueError for a name ``VARIANTS`` does not list)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {tuple(VARIANTS)}, not {variant!r}")
    return VARIANTS[variant]
