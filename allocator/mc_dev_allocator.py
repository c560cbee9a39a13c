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

from .errors import KernelError
from .events import Printk
from .faults import FaultInjector
from .kref import Kref
from .mc.device import MediaDevice
from .mc.devnode import MediaBus
from .module import Module, module_put, try_module_get
from .mutex import Mutex

VARIANTS = ("mainline", "fixed")
HOOK_POINTS = ("release:before_lock",)

Hook = Callable[["MediaDeviceInstance"], None]


class InstanceMediaDevice(MediaDevice):
    """The ``mdev`` embedded in a ``media_device_instance`` (what ``container_of`` finds)."""

    instance: MediaDeviceInstance


class MediaDeviceInstance:
    """``struct media_device_instance``.  ``released`` is ours: set once kfree'd."""

    __slots__ = ("_allocator", "key", "logdev", "mdev", "owner_module", "refcount", "released")

    def __init__(self, allocator: MediaDeviceAllocator, key: Any, owner: Module | None) -> None:
        self._allocator = allocator
        self.key = key
        self.logdev = f"usb {key.name}"  # what dev_dbg(&udev->dev, ...) prefixes
        self.mdev = InstanceMediaDevice(allocator.bus)
        self.mdev.instance = self
        self.owner_module = owner
        self.refcount = Kref(allocator.warn_for(key))
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
    def __init__(
        self,
        bus: MediaBus,
        printk: Printk,
        faults: FaultInjector,
        warn: Callable[[str, str], None],
        variant: str = "mainline",
        lookup: str = "index",
    ) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, not {variant!r}")
        if lookup not in ("index", "scan"):
            raise ValueError(f"lookup must be 'index' or 'scan', not {lookup!r}")
        self.bus = bus
        self.variant = variant
        self._log = printk
        self._faults = faults
        self._warn = warn
        self.media_device_lock: Any = threading.Lock()
        self.media_device_list: list[MediaDeviceInstance] = []
        self._index: dict[int, MediaDeviceInstance] = {}
        self._find = self._find_indexed if lookup == "index" else self._find_scan
        self.hooks: dict[str, Hook] = {}

    def warn_for(self, key: Any) -> Callable[[str], None]:
        dev = f"usb {key.name}"
        return lambda text: self._warn(dev, text)

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

    def _find_indexed(self, dev: Any) -> MediaDeviceInstance | None:
        return self._index.get(id(dev))

    def _find_scan(self, dev: Any) -> MediaDeviceInstance | None:
        for mdi in self.media_device_list:
            if mdi.key is dev:
                return mdi
        return None

    # -- the API ---------------------------------------------------------------------------

    def __media_device_get(self, dev: Any, module_name: str, owner: Module | None) -> MediaDeviceInstance | None:
        """Callers hold ``media_device_lock``."""
        mdi = self._find(dev)
        if mdi is not None and self.variant == "fixed":
            # the owner's reference first, and no media device without it
            if owner is not mdi.owner_module and not self._try_module_get(mdi.owner_module):
                self._log.dev_err(mdi.logdev, f"__media_device_get: module {module_name} get owner reference error")
                raise KernelError(errno.ENODEV, f"owner module {mdi.owner} is going away", dev.name)
            mdi.refcount.kref_get()
            self._log.dev_dbg(mdi.logdev, f"__media_device_get: module {module_name} got owner reference")
            return mdi
        if mdi is not None:
            mdi.refcount.kref_get()
            if owner is not mdi.owner_module and not self._try_module_get(mdi.owner_module):
                self._log.dev_err(
                    f"usb {dev.name}", f"__media_device_get: module {module_name} get owner reference error"
                )
            else:
                self._log.dev_dbg(f"usb {dev.name}", f"__media_device_get: module {module_name} got owner reference")
            return mdi
        if self._faults.should_fail("kzalloc"):
            return None
        mdi = MediaDeviceInstance(self, dev, owner)
        self.media_device_list.append(mdi)
        self._index[id(dev)] = mdi
        self._log.dev_dbg(f"usb {dev.name}", f"__media_device_get: Allocated media device for owner {module_name}")
        return mdi

    def _try_module_get(self, module: Module | None) -> bool:
        if module is not None and self._faults.armed and self._faults.should_fail("try_module_get"):
            return False
        return try_module_get(module)

    def media_device_usb_allocate(self, udev: Any, module_name: str, owner: Module | None) -> MediaDevice:
        with self.media_device_lock:
            mdi = self.__media_device_get(udev, module_name, owner)
            if mdi is None:
                raise KernelError(errno.ENOMEM, f"media_device_usb_allocate: {os.strerror(errno.ENOMEM)}", udev.name)
            mdev = mdi.mdev
            if mdev.dev is None:  # only the first caller initialises it
                mdev.media_device_usb_init(udev, udev.product, module_name)
            return mdev

    def media_device_delete(self, mdev: MediaDevice, module_name: str, owner: Module | None) -> None:
        mdi = mdev.instance  # type: ignore[attr-defined]  # container_of()
        with self.media_device_lock:
            if mdi.owner_module is not owner:
                module_put(mdi.owner_module)
                self._log.dev_dbg(mdi.logdev, f"media_device_delete: module {module_name} put owner module reference")
        if self.variant == "fixed":
            mdi.refcount.kref_put_mutex(mdi.release, self.media_device_lock)
        else:
            mdi.refcount.kref_put(mdi.release)

    def _media_device_instance_release(self, mdi: MediaDeviceInstance) -> None:
        self._log.dev_dbg(f"usb {mdi.key.name}", "media_device_instance_release: releasing Media Device")
        hook = self.hooks.get("release:before_lock")
        if hook is not None:
            hook(mdi)
        if self.variant == "fixed":  # kref_put_mutex(): already under media_device_lock
            self._unlink(mdi)
        else:
            with self.media_device_lock:
                self._unlink(mdi)

    def _unlink(self, mdi: MediaDeviceInstance) -> None:
        mdi.mdev.media_device_unregister()
        mdi.mdev.media_device_cleanup()
        self.media_device_list.remove(mdi)
        if self._index.get(id(mdi.key)) is mdi:
            del self._index[id(mdi.key)]
        mdi.released = True
