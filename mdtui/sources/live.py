"""The live system as a source: sysfs and the media ioctls for state, udev for events.

``snapshot()`` lists /sys/bus/media/devices and reads each media device (open, DEVICE_INFO,
G_TOPOLOGY, ENUM_ENTITIES); a device is read again only when an event touched its USB
device (or on ENOBUFS, when everything is).  A device that cannot be read is shown with the
reason (gone, denied, unsupported), never dropped silently and never a crash.

Events come from a monitor whose file descriptor the app watches with ``loop.add_reader``
(``watch`` blocks in ``select`` on it): nothing runs while nothing happens.  With no udevd
running (containers, these machines) the monitor listens to the kernel's own uevents and
says so.  bind/unbind write the interface name to the driver's sysfs file; only names that
sysfs itself lists are used, and ``read_only`` refuses every write.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from allocator import Event, KernelError
from allocator.events import EMPTY, ERROR, TRACE, UEVENT
from allocator.mc.topology import DeviceInfo, Topology

from ..live import infer, kmsg
from ..live.media import Ioctl, MediaRead, MediaReadError, kernel_ioctl, read
from ..live.sysfs import Sysfs, UsbDevice, uevent
from ..live.sysfs import read as read_attr
from ..model import InterfaceView, MediaDeviceView, ModuleView, SystemSnapshot, UsbDeviceView
from ..script import Step

EMPTY_TOPOLOGY = Topology(0, (), (), (), ())


class Monitor(Protocol):
    description: str

    def fileno(self) -> int: ...
    def receive(self) -> list[dict[str, str]]: ...
    def close(self) -> None: ...


class LiveSource:
    kind = "live"
    simulated = False
    snapshot_on_loop = False  # reading devices is I/O: the app uses a worker thread

    def __init__(
        self,
        sysfs: Sysfs | None = None,
        ioctl: Ioctl = kernel_ioctl,
        *,
        read_only: bool = False,
        monitor_factory: Callable[[], Monitor] | None = None,
        exact: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sysfs = sysfs or Sysfs()
        self.ioctl = ioctl
        self.read_only = read_only
        self.lock = threading.RLock()
        self._clock = clock
        self._seq = 0
        self._subscribers: tuple[Callable[[Event], None], ...] = ()
        self._cache: dict[str, tuple[MediaDeviceView, str]] = {}  # media path -> view, usb path
        self._dirty: set[str] | None = None  # USB device paths to re-read; None: everything
        self._monitor_factory = monitor_factory
        self.monitor: Monitor | None = None
        self.mode = "inferred"
        self.notes: list[str] = []
        self._want_exact = exact
        self.kmsg: kmsg.KmsgReader | None = None
        self.tracker = kmsg.ExactTracker()
        self._drivers: dict[str, str] = {}  # interface -> driver, as last read
        self._usb: dict[str, UsbDevice] = {}  # USB devices as last read, by real path
        self._reads: dict[str, MediaRead] = {}  # media devices as last read, by node

    # -- events ------------------------------------------------------------------------

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        self._subscribers = (*self._subscribers, callback)

        def stop() -> None:
            self._subscribers = tuple(s for s in self._subscribers if s is not callback)

        return stop

    def history(self) -> list[Event]:
        return []

    def emit(self, kind: str, device: str, text: str, fields: dict[str, str] | None = None, level: str = "") -> Event:
        self._seq += 1
        event = Event(self._seq, self._clock(), kind, level, device, text, fields or EMPTY)
        for callback in self._subscribers:
            callback(event)
        return event

    def start(self) -> None:
        """Open the monitor (and in exact mode /dev/kmsg); a failure is a note, not a crash."""
        if self._want_exact and self.kmsg is None:
            self._start_exact()
        if self._monitor_factory is None or self.monitor is not None:
            return
        try:
            self.monitor = self._monitor_factory()
        except OSError as exc:
            self.notes.append(f"no event monitor ({exc.strerror})")
            return
        self.notes.append(self.monitor.description)

    def _start_exact(self) -> None:
        reason = kmsg.enable()
        if reason is None:
            try:
                self.kmsg = kmsg.KmsgReader()
            except OSError as exc:
                reason = f"exact mode cannot read /dev/kmsg ({exc.strerror})"
        if reason is not None:
            self.notes.append(reason)
        else:
            self.mode = "exact"

    def stop(self) -> None:
        if self.monitor is not None:
            self.monitor.close()
            self.monitor = None
        if self.kmsg is not None:
            self.kmsg.close()
            self.kmsg = None

    def filenos(self) -> list[int]:
        """What to watch for readability: the uevent monitor, and /dev/kmsg in exact mode."""
        fds = [self.monitor.fileno()] if self.monitor is not None else []
        return fds + ([self.kmsg.fileno()] if self.kmsg is not None else [])

    def handle_readable(self) -> None:
        """Drain what is queued: kernel log lines, then uevents (marking what they touched)."""
        if self.kmsg is not None:
            for message in self.kmsg.messages():
                dev = self.tracker.apply(message)
                if dev is not None:
                    self._mark(dev)
                    self.emit(TRACE, f"usb {dev}", message.split(": ", 1)[-1], level="debug")
        if self.monitor is None:
            return
        try:
            received = self.monitor.receive()
        except OSError as exc:
            if exc.errno != errno.ENOBUFS:
                raise
            # the kernel dropped events during a storm: re-read everything, lose nothing
            self.stop()
            self.start()
            with self.lock:
                self._dirty = None
            self.emit(TRACE, "mdtui", "uevent buffer overrun (ENOBUFS): re-reading everything", level="warn")
            return
        for env in received:
            devpath = env.get("DEVPATH", "")
            with self.lock:
                if self._dirty is not None:
                    self._dirty.add(_usb_device_path(self.sysfs.sys, devpath))
            if env.get("ACTION") == "unbind" and env.get("DEVTYPE") == "usb_interface":
                self._owner_unbound(devpath.rsplit("/", 1)[-1])
            self.emit(
                UEVENT,
                env.get("DEVNAME", "").rsplit("/", 1)[-1] or devpath.rsplit("/", 1)[-1],
                f"{env.get('ACTION', '?')} {devpath}",
                env,
            )

    def _mark(self, usb_name: str) -> None:
        with self.lock:
            if self._dirty is not None:
                self._dirty.add(str((self.sysfs.sys / "bus" / "usb" / "devices" / usb_name).resolve()))

    def _owner_unbound(self, interface: str) -> None:
        """Exact mode: mainline logs no line for the owner's own media_device_delete()."""
        usb_name = interface.split(":", 1)[0]
        tracked = self.tracker.devices.get(usb_name)
        driver = self._drivers.get(interface)
        if tracked is not None and driver is not None and self.sysfs.driver_module(driver) == tracked.owner:
            self.tracker.owner_unbound(usb_name)

    def invalidate(self) -> None:
        with self.lock:
            self._dirty = None

    # -- actions -----------------------------------------------------------------------

    def run(self, step: Step) -> None:
        if step.command not in ("bind", "unbind"):
            raise KernelError(errno.EPERM, f"{step}: only the simulated kernel can do that", step.args[0])
        driver, interface = step.args
        if self.read_only:
            raise KernelError(errno.EROFS, f"{step}: mdtui runs read-only (--read-only)", interface)
        try:
            self._write(driver, step.command, interface)
        except KernelError as exc:
            code = exc.errno or errno.EIO
            self.emit(
                ERROR,
                interface,
                str(exc.strerror),
                {"ERRNO": errno.errorcode.get(code, str(code)), "OP": str(step)},
                level="err",
            )
            raise

    def _write(self, driver: str, action: str, interface: str) -> None:
        drivers = self.sysfs.usb_drivers()
        if driver not in drivers:
            raise KernelError(
                errno.ENOENT, f"{action} {interface}: no USB driver '{driver}' in /sys/bus/usb/drivers", interface
            )
        if interface not in os.listdir(self.sysfs.sys / "bus" / "usb" / "devices"):
            raise KernelError(errno.ENODEV, f"{action} {driver}: no USB interface '{interface}' in sysfs", interface)
        path = self.sysfs.sys / "bus" / "usb" / "drivers" / driver / action
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, interface.encode())
            finally:
                os.close(fd)
        except OSError as exc:
            code = exc.errno or errno.EIO
            hint = "needs root: " if code in (errno.EACCES, errno.EPERM) else ""
            raise KernelError(
                code, f"{hint}echo {interface} > {_show(path, self.sysfs.sys)}: {os.strerror(code)}", interface
            ) from exc
        # nothing is re-read here: the kernel sends a bind/unbind uevent (since 4.14) and the
        # device is re-read when it arrives, like after a change anybody else made

    # -- snapshots ---------------------------------------------------------------------

    def snapshot(self) -> SystemSnapshot:
        with self.lock:
            dirty, self._dirty = self._dirty, set()
        reuse = {} if dirty is None else {p: u for p, u in self._usb.items() if p not in dirty}
        usb_devices = self.sysfs.usb_devices(reuse)
        by_path = {str(u.path): u for u in usb_devices}
        self._usb = by_path
        self._drivers = {i.name: i.driver for u in usb_devices for i in u.interfaces if i.driver}
        modules = self.sysfs.modules()
        refcnts = {name: refcnt for name, refcnt, _ in modules}
        views: list[MediaDeviceView] = []
        seen: set[str] = set()
        for media_path in self.sysfs.media_devices():
            key = str(media_path)
            seen.add(key)
            cached = self._cache.get(key)
            if cached is not None and dirty is not None and cached[1] not in dirty:
                views.append(cached[0])
                continue
            view, usb_path = self._device(media_path, by_path, refcnts)
            self._cache[key] = (view, usb_path)
            views.append(view)
        for gone in set(self._cache) - seen:
            del self._cache[gone]
        module_views = tuple(ModuleView(name, refcnt, tuple(users)) for name, refcnt, users in modules)
        usb = tuple(
            UsbDeviceView(
                u.name,
                u.vendor,
                u.product_id,
                u.product,
                tuple(InterfaceView(i.name, i.cls, i.subclass, i.driver) for i in u.interfaces),
                tuple(u.nodes),
            )
            for u in usb_devices
        )
        views.sort(key=lambda v: v.key)
        notes = (f"live system, {self.mode} allocator state", *self.notes)
        return SystemSnapshot(
            source="live",
            seq=self._seq,
            media_devices=tuple(views),
            modules=module_views,
            usb_devices=usb,
            usb_drivers=tuple(self.sysfs.usb_drivers()),
            notes=notes,
        )

    def _device(
        self, media_path: Path, by_path: dict[str, UsbDevice], refcnts: dict[str, int | None]
    ) -> tuple[MediaDeviceView, str]:
        parent = media_path.parent
        shared = uevent(parent).get("DEVTYPE") == "usb_device"
        usb_path = parent if shared else parent.parent
        usb = by_path.get(str(usb_path)) or self.sysfs.usb_device(usb_path)
        devnode = self.sysfs.devnode(media_path)
        model = read_attr(media_path / "model") or ""
        info, topology, legacy, anomalies = DeviceInfo("", model, "", "", 0, 0, 0), EMPTY_TOPOLOGY, {}, ()
        if devnode is None:
            anomalies = ("unreadable: no DEVNAME in its uevent",)
        else:
            try:
                result = read(devnode, self.ioctl, self._reads.get(devnode))
                self._reads[devnode] = result
                info, topology, legacy = result.info, result.topology, result.legacy
            except MediaReadError as exc:
                anomalies = (f"{exc.state}: {exc.strerror}",)
        devnames: dict[tuple[int, int], str] = {}
        numbers = {(i.major, i.minor) for i in topology.interfaces}
        numbers |= {(ma, mi) for _, ma, mi in legacy.values() if ma}
        for number in numbers:
            node = self.sysfs.char_node(*number)
            if node:
                devnames[number] = node
        holders = ()
        if usb is not None:
            holders = tuple(infer.holders(usb, topology, set(devnames.values()), shared, self.sysfs))
        owner = info.driver if shared and info.driver else None
        refcount = len(holders) if shared else None
        inferred = infer.INFERRED
        tracked = self.tracker.devices.get(usb.name) if usb is not None and self.mode == "exact" else None
        if tracked is not None:
            refcount, owner, inferred = tracked.refcount, tracked.owner, infer.INFERRED - {"refcount", "owner"}
            anomalies = (*anomalies, *tracked.anomalies)
        owner_refcnt = refcnts.get(owner) if owner else None
        view = MediaDeviceView(
            key=parent.name,
            usb_device=usb.name if usb is not None else usb_path.name,
            devnode=devnode,
            info=info,
            shared=shared,
            refcount=refcount,
            owner=owner,
            owner_refcnt=owner_refcnt,
            owner_refs_from_sharers=sum(1 for h in holders if h.module != owner) if owner else 0,
            holders=holders,
            topology=topology,
            entity_legacy=tuple(legacy.get(e.id, (e.function, 0, 0)) for e in topology.entities),
            devnames=devnames,
            anomalies=anomalies,
            inferred=inferred,
        )
        return view, str(usb_path)


def _usb_device_path(sys_root: Path, devpath: str) -> str:
    """The USB device a DEVPATH lies under (/devices/pci../usbN/1-1/...), as a real path."""
    parts = devpath.strip("/").split("/")
    for n, part in enumerate(parts):
        if part.startswith("usb") and n + 1 < len(parts):
            return str(sys_root.joinpath(*parts[: n + 2]).resolve())
    return str(sys_root / devpath.lstrip("/"))


def _show(path: Path, sys_root: Path) -> str:
    """A sysfs path as the user would type it (/sys/...), whatever root the source reads."""
    try:
        return "/sys/" + str(path.relative_to(sys_root))
    except ValueError:
        return str(path)
