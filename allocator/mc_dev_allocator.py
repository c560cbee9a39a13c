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
mainline, ``FixedMediaDeviceAllocator`` the fix, and the designs of the seed documents, each
the allocator as that patch had it (their docstrings quote the lines each difference comes
from): ``V3MediaDeviceAllocator`` (what v4's changelog says v3 lacked: no owner-module
reference), ``V4MediaDeviceAllocator`` (2016: the owner found by ``find_module()`` without
``module_mutex``, which lockdep WARNs about; its own ``dev`` pointer) and
``V10MediaDeviceAllocator`` (2019: ``find_module()`` under ``module_mutex``).
``Kernel(variant=...)`` picks one from ``VARIANTS`` when it is built.  Every design logs
mainline's four debug lines, so exact mode (which counts them) follows each design's kref.
The window ``release:before_lock`` marks is in every design but ``fixed``.

Deliberate difference: lookup goes through a dict keyed by the device as well as the list (the
kernel walks the list), so an allocate costs the same with 1 or 1,000 shared devices;
``lookup="scan"`` walks the list as the kernel does, for comparison.
"""

from __future__ import annotations

import errno
import os
import threading
import zlib
from collections.abc import Callable
from typing import Any

from . import callchain
from .device import Device, dev_str
from .errors import KernelError
from .events import Printk
from .faults import FaultInjector
from .files import File, Fops
from .kref import Kref
from .kreport import KernelReport, Reporter
from .mc.device import MediaDevice
from .mc.devnode import MediaBus
from .module import Module, ModuleState, module_put, try_module_get
from .mutex import Mutex
from .usb import UsbDevice

HOOK_POINTS = ("release:before_lock",)
#: the module mc-dev-allocator.c is built into (``media`` before 5.2; ``mc`` here)
MEDIA_CORE = "mc"

Hook = Callable[["MediaDeviceInstance"], None]


class InstanceMediaDevice(MediaDevice):
    """The ``mdev`` embedded in a ``media_device_instance`` (what ``container_of`` finds)."""

    instance: MediaDeviceInstance


class MediaDeviceInstance:
    """``struct media_device_instance``.  ``released`` is ours: set once kfree'd; so is
    ``key``, the device it was allocated for (the model's lookup key in every design)."""

    __slots__ = ("_allocator", "key", "logdev", "mdev", "owner_module", "refcount", "released")

    #: the ``mdev`` it embeds
    mdev_class: type[InstanceMediaDevice] = InstanceMediaDevice

    def __init__(self, allocator: MediaDeviceAllocator, key: Device, owner: Module | None) -> None:
        self._allocator = allocator
        self.key = key
        self.logdev = logdev = dev_str(key)  # what dev_dbg(&udev->dev, ...) prefixes
        self.mdev = self.mdev_class(allocator.bus)
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
    #: the ``struct media_device_instance`` of this design
    instance_class: type[MediaDeviceInstance] = MediaDeviceInstance

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
        self.reporter = Reporter(printk, warn, bus.module, _module_names, bus.kernel_version)
        self._warn_once = threading.Lock()  # module_assert_mutex_or_preempt()'s WARN_ON_ONCE
        self._warned_once = False

    @property
    def reports(self) -> list[KernelReport]:
        """Every WARN splat and oops this allocator's kernel printed for it, in order."""
        return self.reporter.reports

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
        self, dev: Device, module_name: str, owner: Module | Callable[[], Module | None] | None
    ) -> MediaDeviceInstance | None:
        """``__media_device_get()`` finding nothing: ``kzalloc``, ``kref_init``, ``list_add_tail``
        (None when the allocation fails).  ``owner`` may be how the design finds it, called
        once the allocation succeeded."""
        if self._faults.should_fail("kzalloc"):
            return None
        mdi = self.instance_class(self, dev, owner() if callable(owner) else owner)
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

    def _find_module(self, module_name: str, logdev: str, site: str, *, module_mutex_held: bool) -> Module | None:
        """``find_module(module_name)`` (kernel/module.c), called from ``site``
        (``media_device_usb_allocate+0x10b/0x170``): the loaded module of that name, None for a
        built-in driver (no ``struct module``) or none.  Its first line is
        ``module_assert_mutex()``, ``lockdep_assert_held(&module_mutex)``: without the mutex,
        a lockdep kernel WARNs at kernel/module.c:262, every time; then ``find_module_all()``
        asserts it again in ``module_assert_mutex_or_preempt()``, a ``WARN_ON_ONCE``
        (kernel/module.c:272, once per boot).  Hans Verkuil's log of v9, which still called it
        without the mutex (linux-media, 2019-01-21), shows both on au0828's probe and only the
        first after.  Deliberate difference: the model takes no lock for the lookup (a dict
        read, atomic here); ``module_mutex_held`` says whether the design's C holds it."""
        if not module_mutex_held:
            caller = (site, MEDIA_CORE)
            ctx = callchain.current(self.bus.files.tasks, site.split("+", 1)[0])
            cause = f"find_module({module_name}) without module_mutex"
            where = ctx._replace(frames=(("find_module+0x9/0x20", None), caller, *ctx.frames))
            self.reporter.warn(logdev, "kernel/module.c:262", "module_assert_mutex+0x20/0x30", where, cause)
            with self._warn_once:
                first, self._warned_once = not self._warned_once, True
            if first:
                where = ctx._replace(frames=(("find_module_all+0x16/0x90", None), caller, *ctx.frames))
                symbol = "module_assert_mutex_or_preempt+0x29/0x30"
                self.reporter.warn(logdev, "kernel/module.c:272", symbol, where, cause)
        return self.bus.module(module_name)


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


# -- the seed designs --------------------------------------------------------------------


class V10MediaDeviceAllocator(MediaDeviceAllocator):
    """The design of "[PATCH v10 1/4] media: Media Device Allocator API" (2019): mainline
    but for how the owner is known.  The API takes no ``owner``; both calls look the
    caller's module up by name, under the module list's mutex:

        mutex_lock(&module_mutex);
        modptr = find_module(module_name);
        mutex_unlock(&module_mutex);

    (in ``media_device_usb_allocate()`` before ``media_device_lock``, and in
    ``media_device_delete()`` before it too), so lockdep has nothing to say.  The instance has
    no device pointer of its own (``struct media_device mdev; struct module *owner; struct
    list_head list; struct kref refcount;``): the key is compared through the media device,
    ``if (mdi->mdev.dev != dev) continue;``.  The rest is mainline's: ``kref_get()`` before
    ``if (modp != mdi->owner && !try_module_get(mdi->owner))``, which only ``dev_err()``s,
    and ``kref_put()`` after ``media_device_lock`` is dropped, the window before the release
    takes it again (``release:before_lock``).  The ``owner`` mainline's drivers pass is not
    this API's: ignored."""

    variant = "v10"

    def _find_scan(self, dev: Device) -> MediaDeviceInstance | None:
        for mdi in self.media_device_list:
            if mdi.mdev.dev is not dev:  # mdi->mdev.dev != dev
                continue
            return mdi
        return None

    def media_device_usb_allocate(self, udev: UsbDevice, module_name: str, owner: Module | None) -> MediaDevice:
        modptr = self._find_module(
            module_name, dev_str(udev), "media_device_usb_allocate+0x10b/0x170", module_mutex_held=True
        )
        return super().media_device_usb_allocate(udev, module_name, modptr)

    def media_device_delete(self, mdev: MediaDevice, module_name: str, owner: Module | None) -> None:
        logdev = mdev.instance.logdev  # type: ignore[attr-defined]
        modptr = self._find_module(module_name, logdev, "media_device_delete+0x27/0x68", module_mutex_held=True)
        super().media_device_delete(mdev, module_name, modptr)


class V4MediaDeviceInstance(MediaDeviceInstance):
    """v4's ``struct media_device_instance`` keeps its own ``struct device *dev;``.  Sakari
    Ailus asked "We've got a struct device pointer in struct media_device. Should we have the
    same here, or use the value in struct media_device?"; Shuah Khan: "I think it is good to
    have it independent of media_device." (v10 uses the media device's.)"""

    __slots__ = ("dev",)

    def __init__(self, allocator: MediaDeviceAllocator, key: Device, owner: Module | None) -> None:
        super().__init__(allocator, key, owner)
        self.dev = key  # mdi->dev = dev;


class V4MediaDeviceAllocator(MediaDeviceAllocator):
    """The design of "[PATCH v4 1/3] media: Media Device Allocator API" (2016), as Sakari
    Ailus reviewed it: ``media_device_usb_allocate(struct usb_device *udev, char
    *module_name)`` and ``media_device_delete(struct media_device *mdev, char *module_name)``,
    no ``owner``: the owner is found by name, inside ``__media_device_get()`` under
    ``media_device_lock`` and never under ``module_mutex``:

        if (mdi->dev == dev) {
                kref_get(&mdi->refcount);
                if (find_module(module_name) != mdi->owner &&
                    !try_module_get(mdi->owner))
        ...
        mdi->dev = dev;
        mdi->owner = find_module(module_name);

    and ``media_device_delete()`` puts the owner module under the lock and the kref outside
    it (the window ``release:before_lock`` marks, as mainline's):

        mutex_lock(&media_device_lock);
        if (mdi->owner != find_module(module_name)) {
                module_put(mdi->owner);
        ...
        mutex_unlock(&media_device_lock);
        kref_put(&mdi->refcount, media_device_instance_release);

    Each of those ``find_module()`` calls is one lockdep WARN (``_find_module``): on every
    probe, with ``find_module_all()``'s once-per-boot WARN after the first, and on every
    delete.  The instance keeps its own ``dev`` (``V4MediaDeviceInstance``), the key it is
    found by.  The ``owner`` mainline's drivers pass is not this API's: ignored."""

    variant = "v4"
    instance_class: type[MediaDeviceInstance] = V4MediaDeviceInstance

    def _find_scan(self, dev: Device) -> MediaDeviceInstance | None:
        for mdi in self.media_device_list:
            if mdi.dev is dev:  # type: ignore[attr-defined]  # mdi->dev == dev
                return mdi
        return None

    def _media_device_get(self, dev: Device, module_name: str, owner: Module | None) -> MediaDeviceInstance | None:
        mdi = self._find(dev)
        if mdi is None:

            def find_owner() -> Module | None:  # mdi->owner = find_module(module_name);
                site = "media_device_usb_allocate+0x10b/0x170"
                return self._find_module(module_name, dev_str(dev), site, module_mutex_held=False)

            return self._media_device_instance_alloc(dev, module_name, find_owner)
        mdi.refcount.kref_get()
        found = self._find_module(
            module_name, mdi.logdev, "media_device_usb_allocate+0x7c/0x170", module_mutex_held=False
        )
        if found is not mdi.owner_module and not self._try_module_get(mdi.owner_module):
            self._log.dev_err(mdi.logdev, f"__media_device_get: module {module_name} get owner reference error")
        else:
            self._log.dev_dbg(mdi.logdev, f"__media_device_get: module {module_name} got owner reference")
        return mdi

    def media_device_delete(self, mdev: MediaDevice, module_name: str, owner: Module | None) -> None:
        mdi = mdev.instance  # type: ignore[attr-defined]  # to_media_device_instance()
        with self.media_device_lock:
            site = "media_device_delete+0x27/0x68"
            if mdi.owner_module is not self._find_module(module_name, mdi.logdev, site, module_mutex_held=False):
                module_put(mdi.owner_module)
                self._log.dev_dbg(mdi.logdev, f"media_device_delete: module {module_name} put owner module reference")
        mdi.refcount.kref_put(mdi.release)


class V3InstanceMediaDevice(InstanceMediaDevice):
    """v3's media device: registered like any, its node's ``cdev.owner`` the module that
    registered it, but nothing keeps that module loaded while another driver shares the
    device.  After ``rmmod`` of the owner, ``open()`` of the node still reaches
    ``chrdev_open()`` -> ``cdev_get()`` -> ``try_module_get(cdev->owner)``, which reads the
    freed ``struct module``: the kernel paging error.  The model's file layer pins a node's
    modules before its open and reports a get of a freed module as a WARN (a path mainline
    reaches only through a lost race); this node pins its cdev owner in its own open, so that
    this access is what the kernel printed: an oops, in the task that made it."""

    def media_device_register(self, owner: Any) -> None:
        super().media_device_register(owner)
        devnode = self.devnode
        assert devnode is not None
        base = self._bus.fops(devnode, self._ioctl)
        cdev_owner: Module | None = devnode.owner

        def chrdev_open(file: File) -> None:
            if cdev_owner is not None and cdev_owner.state is ModuleState.UNLOADED:
                self.instance._allocator._paging_request(self, file, cdev_owner)  # type: ignore[attr-defined]
            if not try_module_get(cdev_owner):  # cdev_get(): a module going away is ENXIO
                raise KernelError(errno.ENXIO, f"open {file.path}: {os.strerror(errno.ENXIO)}", file.path)
            try:
                if base.open is not None:
                    base.open(file)
            except KernelError:
                module_put(cdev_owner)
                raise
            file.pins = (*file.pins, cdev_owner)  # put at the last close, as cdev_put()

        others = tuple(m for m in base.owners if m is not cdev_owner)  # fops_get(): mc
        fops = Fops(others, chrdev_open, base.release, base.ioctl, base.unlocked_ioctl)
        self._bus.files.register(devnode.device, fops)


class V3MediaDeviceInstance(V4MediaDeviceInstance):
    """v4's instance without its owner: v3 kept no ``struct module *owner``."""

    __slots__ = ()
    mdev_class = V3InstanceMediaDevice


class V3MediaDeviceAllocator(V4MediaDeviceAllocator):
    """v3, as the v4 patch's changelog says it was, from what v4 fixed:

        - Fixed kernel paging error when accessing /dev/mediaX after rmmod of the
        module that owns the media_device. The fix bumps the reference count for
        the owner when second driver comes along to share the media_device.

    So v3 takes no owner-module reference at all (no ``find_module()``, no lockdep WARN, no
    owner in the instance: ``owner`` is None, and ``check()`` expects no references from
    sharers).  ``rmmod`` of the module that registered the media device succeeds while
    another driver shares it (Shuah Khan's reply: "without the second driver holding the
    reference to the first module, bad things happen"); the device stays registered, its
    node's cdev owner freed, and the next open of ``/dev/mediaN`` is an oops
    (``V3InstanceMediaDevice``), reported in ``reports`` and by ``check()`` as ``oops``.  An
    fd opened before the rmmod pins the owner (the rmmod is refused), so after it every
    access starts with an open.  The rest is v4's (its own ``dev`` key; the kref put outside
    ``media_device_lock``, so the ``release:before_lock`` window is here too); v3's text is
    not in the seeds, so where v4's changelog says nothing, v3 is v4.  Its debug lines are
    mainline's, "got owner reference" included, though it takes none (exact mode counts the
    line as a kref get)."""

    variant = "v3"
    instance_class: type[MediaDeviceInstance] = V3MediaDeviceInstance

    def _media_device_get(self, dev: Device, module_name: str, owner: Module | None) -> MediaDeviceInstance | None:
        mdi = self._find(dev)
        if mdi is None:
            return self._media_device_instance_alloc(dev, module_name, None)
        mdi.refcount.kref_get()
        self._log.dev_dbg(mdi.logdev, f"__media_device_get: module {module_name} got owner reference")
        return mdi

    def media_device_delete(self, mdev: MediaDevice, module_name: str, owner: Module | None) -> None:
        mdi = mdev.instance  # type: ignore[attr-defined]
        mdi.refcount.kref_put(mdi.release)

    def _paging_request(self, mdev: MediaDevice, file: File, freed: Module) -> None:
        """The oops of an open of ``mdev``'s node after its cdev owner ``freed`` was unloaded:
        printed, kept, and the task killed (the open never returns)."""
        trace = tuple((symbol, None) for symbol in _CHRDEV_OPEN)
        ctx = callchain.Context(file.task, None, trace)
        cause = (
            f"{file.task.comm}[{file.task.pid}] opened {file.path}, whose cdev owner {freed.name} "
            "was unloaded while the device was shared (v3 takes no owner-module reference)"
        )
        self.reporter.oops(file.path, _freed_module_address(freed), "try_module_get", ctx, cause)
        raise KernelError(errno.EFAULT, "Killed (kernel oops in try_module_get)", file.path)


#: where ``open()`` of a char device meets its cdev owner (fs/char_dev.c), innermost first
_CHRDEV_OPEN = (
    "cdev_get",
    "chrdev_open",
    "do_dentry_open",
    "vfs_open",
    "path_openat",
    "do_filp_open",
    "do_sys_open",
    "__x64_sys_openat",
    "do_syscall_64+0x4b/0x180",
    "entry_SYSCALL_64_after_hwframe+0x49/0xbe",
)


def _freed_module_address(module: Module) -> int:
    """Where a freed module's ``struct module`` was: made up, in the module area, the same
    for the same name."""
    return 0xFFFFFFFFA0000000 + (zlib.crc32(module.name.encode()) & 0x3FFFF0)


def _module_names() -> tuple[str, ...]:
    """What ``/lib/modules`` holds (``Modules linked in`` lists the loaded ones)."""
    from .loader import MODULES  # the loader's drivers import much of the model: not at import time

    return tuple(MODULES)


#: every allocator the simulated kernel can run, by the name ``Kernel(variant=...)`` takes
VARIANTS: dict[str, type[MediaDeviceAllocator]] = {
    cls.variant: cls
    for cls in (
        V3MediaDeviceAllocator,
        V4MediaDeviceAllocator,
        V10MediaDeviceAllocator,
        MediaDeviceAllocator,
        FixedMediaDeviceAllocator,
    )
}


def allocator_class(variant: str) -> type[MediaDeviceAllocator]:
    """The allocator of ``variant`` (ValueError for a name ``VARIANTS`` does not list)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {tuple(VARIANTS)}, not {variant!r}")
    return VARIANTS[variant]
