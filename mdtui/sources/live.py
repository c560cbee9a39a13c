"""The live system as a source: sysfs and the media ioctls for state, udev for events.

``snapshot()`` lists /sys/bus/media/devices and reads each media device (open, DEVICE_INFO,
G_TOPOLOGY, ENUM_ENTITIES); a device is read again only when an event touched its USB
device (or on ENOBUFS, when everything is).  A device that cannot be read is shown with the
reason (gone, denied, unsupported), never dropped silently and never a crash.

Events come from a monitor whose file descriptor the app watches with ``loop.add_reader``
(``watch`` blocks in ``select`` on it): nothing runs while nothing happens.  With no udevd
running (containers, these machines) the monitor listens to the kernel's own uevents and
says so.  bind/unbind write the interface name to the driver's sysfs file; only names that
sysfs itself lists are used, and ``read_only`` refuses every write (exact mode's switch of
the allocator's debug lines included: it then works only if they already print).  What
exact mode switched on is switched off again on ``stop()``, and at interpreter exit.

A device whose node cannot be opened (EACCES: not in the ``video`` group), or whose
directory cannot be resolved (a symlink loop, EACCES on the way), is shown with what sysfs
still says (its parent, the drivers bound there and their modules) and ``unread`` naming
the device and errno; what needs the ioctls is unknown, never 0 or "none".
"""

from __future__ import annotations

import atexit
import dataclasses
import errno
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from allocator.errors import KernelError
from allocator.events import EMPTY, ERROR, TRACE, UEVENT, Event
from allocator.mc.topology import DeviceInfo, Topology

from ..live import infer, kmsg, openers
from ..live.closes import CloseWatch
from ..live.media import Ioctl, MediaRead, MediaReadError, kernel_ioctl, read
from ..live.sysfs import MediaEntry, Parent, Sysfs, UsbDevice
from ..model import (
    BoundDriver,
    HolderView,
    InterfaceView,
    MediaDeviceView,
    ModuleView,
    OpenFileView,
    SystemSnapshot,
    Unread,
    UsbDeviceView,
)
from . import Source

if TYPE_CHECKING:
    from ..step import Step

EMPTY_TOPOLOGY = Topology(0, (), (), (), ())
USB_DEVICE_NAME = re.compile(r"^\d+-\d+(\.\d+)*$")  # BUS-PORT[.PORT...]: a USB device, not an interface
NO_INFO = DeviceInfo("", "", "", "", 0, 0, 0)
#: what a real machine can be asked to do: the files of /sys/bus/usb/drivers/DRIVER/
SYSFS_ACTIONS = ("bind", "unbind")
#: after a close of a file that kept a reference: the first read again, and how many more
SETTLE_FIRST, SETTLE_TRIES = 0.025, 6


class Monitor(Protocol):
    description: str

    def fileno(self) -> int: ...
    def receive(self) -> list[dict[str, str]]: ...
    def close(self) -> None: ...


class LiveSource(Source):
    """Reading devices is I/O: snapshots are built in a thread (``snapshot_on_loop`` off)."""

    def __init__(
        self,
        sysfs: Sysfs | None = None,
        ioctl: Ioctl = kernel_ioctl,
        *,
        read_only: bool = False,
        monitor_factory: Callable[[], Monitor] | None = None,
        exact: bool = False,
        clock: Callable[[], float] = time.monotonic,
        debugfs: Path = Path("/sys/kernel/debug"),
        kmsg_path: str = "/dev/kmsg",
        proc: Path = openers.PROC,
        proc_calls: openers.Calls = openers.SYSCALLS,
        close_watch: Callable[[], CloseWatch] | None = CloseWatch,
    ) -> None:
        super().__init__()
        self.sysfs = sysfs or Sysfs()
        self.ioctl = ioctl
        self.read_only = read_only
        self.lock = threading.RLock()
        self._clock = clock
        self._seq = 0
        self._cache: dict[str, tuple[MediaDeviceView, str]] = {}  # media path -> view, usb path
        self._dirty: set[str] | None = None  # USB device paths to re-read; None: everything
        self._reread_media: set[str] = set()  # media devices (keys) whose ioctls the next snapshot reads again
        self._monitor_factory = monitor_factory
        self.monitor: Monitor | None = None
        self.mode = "inferred"
        self.notes: list[str] = []
        self._want_exact = exact
        self.kmsg: kmsg.KmsgReader | None = None
        self.debug = kmsg.DebugSwitch(debugfs)
        self._kmsg_path = kmsg_path
        self.tracker = kmsg.ExactTracker()
        self._drivers: dict[str, str] = {}  # interface -> driver, as last read
        self._usb: dict[str, UsbDevice] = {}  # USB devices as last read, by real path
        self._reads: dict[str, MediaRead] = {}  # media devices as last read, by node
        # who holds the nodes open (issue #12): /proc is scanned again only when something
        # could have changed (a uevent, a watched close); see _open_files
        self._proc, self._proc_calls = proc, proc_calls
        self._openers = openers.Openers((), 0, 0)
        self._scan_due = True
        self._first_seen: dict[tuple[int, int, tuple[int, int]], float] = {}  # (pid, fd, devt) -> time
        self._last_time = 0.0  # of the last event emitted
        self._node_owners: dict[infer.Devt, infer.NodeOwner] = {}  # remembered while their drivers were bound
        self._unbound_at: dict[str, float] = {}  # interface -> when its unbind uevent came
        self._close_watch_factory = close_watch
        self.closes: CloseWatch | None = None
        self._settling = False  # a keeping file was closed: read again until the release is seen
        self._kept: dict[str, tuple[str, OpenFileView]] = {}  # watched /proc/PID/fd/N -> (device key, file)
        self._media_devt: dict[str, infer.Devt] = {}  # media device key -> its /dev/mediaN's number

    # -- events ------------------------------------------------------------------------

    def now(self) -> float:
        """The clock this source stamps its events with."""
        return self._clock()

    def emit(self, kind: str, device: str, text: str, fields: dict[str, str] | None = None, level: str = "") -> Event:
        self._seq += 1
        event = Event(self._seq, self._clock(), kind, level, device, text, fields or EMPTY)
        self._last_time = event.time
        self.publish(event)
        return event

    def start(self) -> None:
        """Open the monitor (and in exact mode /dev/kmsg); a failure is a note, not a crash."""
        if self._want_exact and self.kmsg is None:
            self._start_exact()
        if self._close_watch_factory is not None and self.closes is None:
            try:
                self.closes = self._close_watch_factory()
            except OSError as exc:
                self.notes.append(f"closes of files keeping a reference not watched ({exc.strerror})")
        if self._monitor_factory is None or self.monitor is not None:
            return
        try:
            self.monitor = self._monitor_factory()
        except OSError as exc:
            self.notes.append(f"no event monitor ({exc.strerror})")
            return
        self.notes.append(self.monitor.description)

    def _start_exact(self) -> None:
        """Switch the allocator's debug lines on (not with --read-only) and follow /dev/kmsg;
        why not is a note in the header and a warning in the event stream (``watch``)."""
        reason = self.debug.enable(read_only=self.read_only)
        if reason is None:
            try:
                self.kmsg = kmsg.KmsgReader(self._kmsg_path)
            except OSError as exc:
                reason = f"exact mode cannot read {self._kmsg_path} ({exc.strerror})"
                self._restore_debug()
        if reason is not None:
            self._want_exact = False  # said once; an overrun's restart does not say it again
            self.notes.append(reason)
            self.emit(TRACE, "mdtui", reason, level="warn")
            return
        self.mode = "exact"
        if self.debug.switched:
            atexit.register(self._restore_debug)
            self.notes.append("exact mode: the allocator's debug lines switched on until mdtui exits")
        elif self.read_only:
            self.notes.append("exact mode: the allocator's debug lines were already on (--read-only: none switched)")

    def _restore_debug(self) -> None:
        """Put the debug lines back as they were; a failure is an error event, not a crash."""
        atexit.unregister(self._restore_debug)
        reason = self.debug.restore()
        if reason is not None:
            self.emit(ERROR, "mdtui", f"could not switch the allocator's debug lines back off: {reason}", level="err")

    def stop(self) -> None:
        self._stop_monitor()
        if self.kmsg is not None:
            self.kmsg.close()
            self.kmsg = None
        if self.closes is not None:
            self.closes.close()
            self.closes = None
        self._restore_debug()

    def _stop_monitor(self) -> None:
        if self.monitor is not None:
            self.monitor.close()
            self.monitor = None

    def filenos(self) -> list[int]:
        """What to watch for readability: the uevent monitor, /dev/kmsg in exact mode, and the
        inotify watch on files that keep a reference (``mdtui.live.closes``)."""
        fds = [self.monitor.fileno()] if self.monitor is not None else []
        fds += [self.closes.fileno()] if self.closes is not None else []
        return fds + ([self.kmsg.fileno()] if self.kmsg is not None else [])

    def handle_readable(self) -> None:
        """Drain what is queued: closes of keeping files, uevents (marking what they
        touched), then kernel log lines.  Uevents first: an unbind's uevent follows the log
        lines of the driver's remove, so a log line still queued behind it is later than it
        (an unplug's unbind, then the replug's allocation)."""
        if self.closes is not None:
            closed = self.closes.drain()
            if closed:
                self._kept_file_closed(closed)
        self._read_uevents()
        if self.kmsg is not None:
            for message in self.kmsg.messages():
                dev = self.tracker.apply(message)
                if dev is not None:
                    self._mark(dev)
                    self.emit(TRACE, f"usb {dev}", message.split(": ", 1)[-1], level="debug")

    def _read_uevents(self) -> None:
        if self.monitor is None:
            return
        try:
            received = self.monitor.receive()
        except OSError as exc:
            if exc.errno != errno.ENOBUFS:
                raise
            # the kernel dropped events during a storm: re-read everything, lose nothing (the
            # monitor only: exact mode's debug lines stay on, /dev/kmsg has its own sequence)
            self._stop_monitor()
            self.start()
            with self.lock:
                self._dirty = None
            self.emit(TRACE, "mdtui", "uevent buffer overrun (ENOBUFS): re-reading everything", level="warn")
            return
        for env in received:
            devpath = env.get("DEVPATH", "")
            last = devpath.rsplit("/", 1)[-1]
            with self.lock:
                if self._dirty is not None:
                    self._dirty.add(_usb_device_path(self.sysfs.sys, devpath))
            if env.get("DEVTYPE") == "usb_interface" and env.get("ACTION") == "unbind":
                self._owner_unbound(last)
            # a USB device's DEVNAME is bus/usb/001/002: it is known by its sysfs name (1-1)
            named = "" if env.get("SUBSYSTEM") == "usb" else env.get("DEVNAME", "").rsplit("/", 1)[-1]
            event = self.emit(
                UEVENT,
                named or last,
                f"{env.get('ACTION', '?')} {devpath}",
                env,
            )
            if env.get("DEVTYPE") == "usb_interface" and env.get("ACTION") in ("bind", "unbind"):
                with self.lock:  # when a driver let go of its interface, as the event log shows it
                    if env["ACTION"] == "unbind":
                        self._unbound_at[last] = event.time
                    else:
                        self._unbound_at.pop(last, None)

    def _kept_file_closed(self, paths: set[str]) -> None:
        """A file that kept a reference was closed (or its process exited): read the devices
        it kept again, and /proc (the kernel said nothing else)."""
        with self.lock:
            keys = {self._kept[p][0] for p in paths if p in self._kept}
            self._reread_media |= keys
            self._scan_due = self._settling = True
        files = [self._kept[p][1] for p in sorted(paths) if p in self._kept]
        closed = ", ".join(f"{f.node} (pid {f.pid} {f.comm})" for f in files) or "a file keeping a reference"
        names = ", ".join(sorted(keys)) or "the media devices"
        self.emit(TRACE, "mdtui", f"close of {closed}: reading {names} again", {"CLOSED": closed}, level="debug")

    def _mark(self, usb_name: str) -> None:
        with self.lock:
            if self._dirty is not None:
                self._dirty.add(_real(self.sysfs.sys / "bus" / "usb" / "devices" / usb_name))

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

    def perform(self, step: Step) -> None:
        if step.command not in SYSFS_ACTIONS:
            device = step.args[-1] if step.args else ""
            raise KernelError(errno.EPERM, f"{step}: only the simulated kernel can do that", device)
        if len(step.args) != 2:
            raise KernelError(errno.EINVAL, f"{step}: usage: {step.command} DRIVER INTERFACE", "")
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

    def reread_media(self, key: str) -> None:
        with self.lock:
            self._reread_media.add(key)

    @property
    def scan_due(self) -> bool:
        """Whether /proc is to be scanned for open files (something may have changed them)."""
        return self._scan_due

    def snapshot(self, scan: bool = True) -> SystemSnapshot:
        """The machine now.  After a close of a file that kept a reference, the devices it
        kept are read again until the release shows (the kernel notifies the close before the
        driver's release runs): at most SETTLE_TRIES more reads, each later than the last.

        ``scan`` False leaves a due scan of /proc (``scan_due``) to the next snapshot, the
        files open until then as last scanned: the state first, who holds it a moment later
        (the remote agent; a scan takes ~150 ms on a machine of 2,000 processes).  A close
        being settled is always scanned for: it is what tells the release has happened."""
        with self.lock:  # taken now: a close seen during this read settles the next one
            settling, self._settling = self._settling, False
        snap = self._snapshot(scan or settling)
        delay = SETTLE_FIRST
        for _ in range(SETTLE_TRIES):
            pending = {
                d.key for d in snap.media_devices if any(h.state == "deferred" and not h.kept_by for h in d.holders)
            }
            if not (settling and pending):
                break
            time.sleep(delay)
            delay *= 2
            with self.lock:
                self._reread_media |= pending
                self._scan_due = True
            snap = self._snapshot()
        return snap

    def _snapshot(self, scan: bool = True) -> SystemSnapshot:
        with self.lock:
            dirty, self._dirty = self._dirty, set()
            reread, self._reread_media = self._reread_media, set()
            if dirty is None or dirty:
                self._scan_due = True  # a uevent: any file may have come or gone with it
        reuse = {} if dirty is None else {p: u for p, u in self._usb.items() if p not in dirty}
        usb_devices = self.sysfs.usb_devices(reuse)
        by_path = {str(u.path): u for u in usb_devices}
        self._usb = by_path
        self._drivers = {i.name: i.driver for u in usb_devices for i in u.interfaces if i.driver}
        modules = self.sysfs.modules()
        views: list[MediaDeviceView] = []
        seen: set[str] = set()
        for entry in self.sysfs.media_entries():
            if entry.path is None:  # never cached: tried again on every snapshot
                views.append(_unresolved(entry))
                continue
            key = str(entry.path)
            seen.add(key)
            cached = self._cache.get(key)
            if (
                cached is not None
                and dirty is not None
                and cached[0].key not in reread  # a graph tab asks for its links again
                and not _touched(cached[1], dirty)
            ):
                views.append(cached[0])
                continue
            links = cached is not None and cached[0].key in reread
            view, usb_path = self._device(entry.name, entry.path, by_path, links)
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
        views = self._open_files(_unique_keys(views), scan)
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
        self, name: str, media_path: Path, by_path: dict[str, UsbDevice], links: bool = False
    ) -> tuple[MediaDeviceView, str]:
        """One media device: sysfs for its parent, node and bound drivers, the ioctls for the
        rest (when they can be made), and the allocator's view inferred from both.  ``links``:
        read the graph whole even if its version did not change (a link's flags)."""
        parent = self.sysfs.parent(media_path)
        usb_path = _usb_path(parent)
        usb = (by_path.get(str(usb_path)) or self.sysfs.usb_device(usb_path)) if usb_path is not None else None
        model = self.sysfs.read(media_path / "model") or ""
        devnode, unread = self._devnode(media_path)
        info, topology, legacy, anomalies = NO_INFO._replace(model=model), EMPTY_TOPOLOGY, {}, ()
        if unread is not None:
            anomalies = (f"unreadable: {unread.reason}",)
        elif devnode is not None:
            try:
                result = read(devnode, self.ioctl, self._reads.get(devnode), links)
                self._reads[devnode] = result
                info, topology, legacy = result.info, result.topology, result.legacy
            except MediaReadError as exc:
                unread, anomalies = exc.unread(), (f"{exc.state}: {exc.strerror}",)
                self._reads.pop(devnode, None)
        devnames = self._devnames(topology, legacy)
        shared = parent.is_usb_device
        holders: tuple[HolderView, ...] = ()
        if usb is not None and unread is None:
            holders = tuple(infer.holders(usb, topology, set(devnames.values()), shared, self.sysfs))
        owner = info.driver if shared and info.driver else None
        refcount = len(holders) if shared and unread is None else None
        inferred = infer.INFERRED
        tracked = self.tracker.devices.get(usb.name) if usb is not None and self.mode == "exact" else None
        if tracked is not None:
            refcount, owner, inferred = tracked.refcount, tracked.owner, infer.INFERRED - {"refcount", "owner"}
            anomalies = (*anomalies, *tracked.anomalies)
        sharers = None if unread is not None else sum(1 for h in holders if h.module != owner) if owner else 0
        if usb is not None and unread is None:
            self._node_owners.update(infer.node_owners(usb, devnames, holders))
        media_devt = _devt(self.sysfs.read(media_path / "dev"))
        view = MediaDeviceView(
            key=parent.name if parent.is_device else name,
            usb_device=usb.name if usb is not None else (usb_path.name if usb_path is not None else None),
            devnode=devnode,
            info=info,
            shared=shared,
            refcount=refcount,
            owner=owner,
            owner_refs_from_sharers=sharers,
            holders=holders,
            topology=topology,
            entity_legacy=tuple(legacy.get(e.id, (e.function, 0, 0)) for e in topology.entities),
            devnames=devnames,
            anomalies=anomalies,
            inferred=inferred,
            parent=parent.label,
            unread=unread,
            bound=self._bound(parent, usb),
            media=name,
        )
        if media_devt is not None:
            self._media_devt[view.key] = media_devt
        return view, str(usb_path) if usb_path is not None else str(parent.path)

    # -- who holds the nodes open ------------------------------------------------------

    def _open_files(self, views: list[MediaDeviceView], scan: bool = True) -> list[MediaDeviceView]:
        """Each device with the files open on its nodes, and the references those keep after
        unbind (``infer.deferred``); /proc is scanned only when something could have
        changed (``_scan_due``), and the keeping files are watched for their close."""
        wanted = {v.key: self._numbers(v) for v in views if v.unread is None}
        if self._scan_due and scan:
            self._scan_due = False
            every = set().union(*wanted.values()) if wanted else set()
            self._openers = openers.scan(every, self._proc, calls=self._proc_calls)
            # first seen: at the event that made mdtui look (the clock is read on the event
            # side only, so a scan in the reader thread never moves it), or now at the start
            now, seen = (self._last_time if self._seq else self._clock()), self._first_seen
            self._first_seen = {
                (f.pid, f.fd, f.device): seen.get((f.pid, f.fd, f.device), now) for f in self._openers.files
            }
        found = self._openers
        by_devt: dict[infer.Devt, list[OpenFileView]] = {}
        for f in found.files:
            since = self._first_seen.get((f.pid, f.fd, f.device))
            by_devt.setdefault(f.device, []).append(OpenFileView(f.pid, f.comm, f.user, f.fd, f.node, f.mode, since))
        out, kept = [], {}
        for v in views:
            numbers = wanted.get(v.key)
            if numbers is None:
                out.append(v)
                continue
            mine = {devt: files for devt, files in by_devt.items() if devt in numbers}
            # never seen bound: the owner (DEVICE_INFO.driver), also when it is bound again (a
            # rebind while its old node is held keeps its old instance's reference)
            fallback = (v.owner, self.sysfs.driver_module(v.owner), "?") if v.owner else ("?", None, "?")
            late = infer.deferred(v.topology, v.devnames, self._node_owners, fallback, mine, self._unbound_at)
            holders = tuple(sorted((*v.holders, *late), key=lambda h: h.interface))  # as infer.holders orders them
            refcount = len(holders) if v.shared and "refcount" in v.inferred else v.refcount
            tracked = self.tracker.devices.get(v.usb_device) if v.usb_device and "refcount" not in v.inferred else None
            if tracked is not None:  # exact mode: the owner's unlogged delete, see kmsg.Tracked
                refcount = tracked.refcount_now(any(h.module == tracked.owner for h in late))
            kept.update({f"{self._proc}/{f.pid}/fd/{f.fd}": (v.key, f) for h in late for f in h.kept_by})
            out.append(
                dataclasses.replace(
                    v,
                    holders=holders,
                    refcount=refcount,
                    owner_refs_from_sharers=sum(1 for h in holders if h.module != v.owner) if v.owner else 0,
                    open_files=tuple(
                        sorted((f for files in mine.values() for f in files), key=lambda f: (f.pid, f.fd))
                    ),
                    hidden_openers=found.hidden,
                )
            )
        self._kept = kept
        if self.closes is not None:
            self.closes.watch(kept)
        return out

    def _numbers(self, view: MediaDeviceView) -> set[infer.Devt]:
        """The device numbers of a media device's nodes: its /dev/mediaN and its interfaces'."""
        numbers = {(i.major, i.minor) for i in view.topology.interfaces if i.major}
        media = self._media_devt.get(view.key)
        return numbers | {media} if media is not None else numbers

    def _devnode(self, media_path: Path) -> tuple[str | None, Unread | None]:
        """The /dev path from the uevent's DEVNAME, or why there is none to open."""
        env = self.sysfs.uevent(media_path)
        name = env.get("DEVNAME")
        where = _show(media_path / "uevent", self.sysfs.sys)
        if not name:
            if self.sysfs.read(media_path / "uevent") is None:
                return None, Unread("unreadable", f"cannot read {where}")
            return None, Unread("unreadable", f"no DEVNAME in {where}")
        if name.startswith("/") or ".." in name.split("/") or "\0" in name:
            return None, Unread("unreadable", f"DEVNAME {name!r} in {where} is no /dev path")
        return str(self.sysfs.dev / name), None

    def _devnames(self, topology: Topology, legacy: dict[int, tuple[int, int, int]]) -> dict[tuple[int, int], str]:
        """/dev paths of the graph's device nodes, through /sys/dev/char."""
        numbers = {(i.major, i.minor) for i in topology.interfaces}
        numbers |= {(ma, mi) for _, ma, mi in legacy.values() if ma}
        out = {}
        for number in numbers:
            node = self.sysfs.char_node(*number)
            if node:
                out[number] = node
        return out

    def _bound(self, parent: Parent, usb: UsbDevice | None) -> tuple[BoundDriver, ...]:
        """The drivers sysfs shows bound to the key device: its USB device's interfaces, or
        the (non-USB) parent itself."""
        if usb is not None:
            return tuple(
                BoundDriver(i.driver, self.sysfs.driver_module(i.driver), i.name) for i in usb.interfaces if i.driver
            )
        if parent.driver and parent.bus:
            return (BoundDriver(parent.driver, self.sysfs.driver_module(parent.driver, parent.bus), parent.name),)
        return ()


def _devt(text: str | None) -> infer.Devt | None:
    """``238:0`` (a sysfs ``dev`` attribute) as numbers; None when unreadable."""
    major, sep, minor = (text or "").strip().partition(":")
    return (int(major), int(minor)) if sep and major.isdigit() and minor.isdigit() else None


def _usb_path(parent: Parent) -> Path | None:
    """The USB device a media device belongs to: its parent (shared through the allocator),
    the parent's parent (a USB interface's driver's own), or none (PCI, platform...)."""
    if parent.is_usb_device:
        return parent.path
    if parent.is_usb_interface:
        return parent.path.parent
    return None


def _unresolved(entry: MediaEntry) -> MediaDeviceView:
    """A media device whose directory cannot be resolved: listed, with why, and no facts."""
    reason = entry.error or f"cannot resolve /sys/bus/media/devices/{entry.name}"
    return MediaDeviceView(
        key=entry.name,
        usb_device=None,
        devnode=None,
        info=NO_INFO,
        shared=False,
        refcount=None,
        owner=None,
        owner_refs_from_sharers=None,
        holders=(),
        topology=EMPTY_TOPOLOGY,
        entity_legacy=(),
        devnames={},
        anomalies=(f"unreadable: {reason}",),
        inferred=infer.INFERRED,
        unread=Unread("unreadable", reason, entry.errname),
        media=entry.name,
    )


def _unique_keys(views: list[MediaDeviceView]) -> list[MediaDeviceView]:
    """Two media devices on one parent (or a lying tree) get distinct keys: the key is what
    the views select and diff by."""
    seen: set[str] = set()
    out = []
    for v in views:
        if v.key in seen:
            v = dataclasses.replace(v, key=f"{v.key} ({v.media or v.devnode or len(out)})")
        seen.add(v.key)
        out.append(v)
    return out


def _touched(device: str, dirty: set[str]) -> bool:
    """Whether an event touched the device a media device is read from (its USB device, or
    its other parent), or anything below it."""
    return device in dirty or any(d.startswith(device + "/") for d in dirty)


def _real(path: Path) -> str:
    """The real path where it resolves, else the path itself (a loop, or gone)."""
    try:
        return os.path.realpath(path)
    except (OSError, ValueError):
        return str(path)


def _usb_device_path(sys_root: Path, devpath: str) -> str:
    """The USB device a DEVPATH lies under, as a real path: the last of the chain of USB
    device names (``1-1``, ``1-1.2`` behind a hub) before the first that is none (an
    interface ``1-1.2:1.0``, a class device).  Any other DEVPATH is itself."""
    parts = devpath.strip("/").split("/")
    end = None
    for n, part in enumerate(parts):
        if USB_DEVICE_NAME.match(part):
            end = n + 1
        elif end is not None:
            break
    if end is not None:
        return _real(sys_root.joinpath(*parts[:end]))
    return str(sys_root / devpath.lstrip("/"))


def _show(path: Path, sys_root: Path) -> str:
    """A sysfs path as the user would type it (/sys/...), whatever root the source reads."""
    try:
        return "/sys/" + str(path.relative_to(sys_root))
    except ValueError:
        return str(path)
