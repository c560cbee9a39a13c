"""The state model every view renders: immutable snapshots of a machine's media devices.

A source (the simulated kernel, or the live system) produces a ``SystemSnapshot``; widgets,
``dump`` and ``watch`` only ever read snapshots.  Fields a live source can only infer (the
allocator keeps its refcount and owner to itself) are named in ``MediaDeviceView.inferred``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from allocator.mc import uapi
from allocator.mc.topology import DeviceInfo, TopoLink, Topology

#: every view is an immutable record; with slots where dataclasses make them (3.10: the
#: remote agent's Python may be 3.8, see mdtui/remote/pack.py)
RECORD = {"frozen": True, "slots": True} if sys.version_info >= (3, 10) else {"frozen": True}

#: what a link joins, from the type field of its flags (``MEDIA_LNK_FL_LINK_TYPE``): data
#: links join two pads, interface links an interface to an entity, ancillary links (5.18)
#: two entities (a sensor and its lens or flash); other values are not defined by media.h
DATA, INTERFACE, ANCILLARY, UNKNOWN = "data", "interface", "ancillary", "unknown"
LINK_KINDS = {
    uapi.MEDIA_LNK_FL_DATA_LINK: DATA,
    uapi.MEDIA_LNK_FL_INTERFACE_LINK: INTERFACE,
    uapi.MEDIA_LNK_FL_ANCILLARY_LINK: ANCILLARY,
}
KIND_FLAGS = {kind: flags for flags, kind in LINK_KINDS.items()}


def link_kind(flags: int) -> str:
    """``data``, ``interface``, ``ancillary`` or ``unknown``: the type field, not one bit of it."""
    return LINK_KINDS.get(flags & uapi.MEDIA_LNK_FL_LINK_TYPE, UNKNOWN)


def links_of_kind(links: tuple[TopoLink, ...], kind: str) -> list[TopoLink]:
    if kind == UNKNOWN:
        return [ln for ln in links if link_kind(ln.flags) == UNKNOWN]
    mask, want = uapi.MEDIA_LNK_FL_LINK_TYPE, KIND_FLAGS[kind]  # a graph has ~1,000 links: no call per link
    return [ln for ln in links if ln.flags & mask == want]


#: what readlink of an fd adds when its node was removed from /dev (``d_path()``)
DELETED = " (deleted)"


def opened_as(node: str) -> str:
    """The path a file was opened as: an fd link's text without ``DELETED``."""
    return node[: -len(DELETED)] if node.endswith(DELETED) else node


@dataclass(**RECORD)
class OpenFileView:
    """A file open on one of a media device's nodes, as ``/proc/PID/fd`` and ``fdinfo`` show
    it: ``node`` is the fd link's text ("/dev/video0", "/dev/video0 (deleted)", a bind
    mount's path), ``mode`` "r", "w", "rw", "ioctl" or "?".  ``since``: when it was opened
    (the simulated kernel knows), or when the live source first saw it open (the kernel
    does not say); None: unknown."""

    pid: int
    comm: str
    user: str
    fd: int
    node: str
    mode: str
    since: float | None = None


@dataclass(**RECORD)
class HolderView:
    driver: str
    module: str | None
    interface: str
    state: str  # "bound" | "deferred"
    reason: str
    unbound_at: float | None = None  # deferred: when its driver was unbound (None: not seen)
    kept_by: tuple[OpenFileView, ...] = ()  # deferred: the open files that keep the reference


@dataclass(**RECORD)
class BoundDriver:
    """A driver bound to the key device (an interface of the USB device, or the parent
    itself), as sysfs shows it whether or not the media device can be opened."""

    driver: str
    module: str | None  # the module behind it (/sys/bus/*/drivers/DRIVER/module); None: built in
    device: str  # the interface or device it is bound to


@dataclass(**RECORD)
class Unread:
    """Why what only the media ioctls tell (DEVICE_INFO, the graph, and all that is inferred
    from them) is unknown for a device: ``open()`` or an ioctl failed, or sysfs could not
    say which node to open."""

    state: str  # "denied" | "gone" | "unsupported" | "unstable" | "error" | "unreadable"
    reason: str  # "permission denied: /dev/media0 (EACCES on open)"
    errno: str | None = None  # "EACCES"; None when no system call failed (no DEVNAME)

    @property
    def unknown(self) -> str:
        return f"unknown ({self.reason})"


@dataclass(**RECORD)
class MediaDeviceView:
    """One media device, as far as a user can know it."""

    key: str  # stable identity across snapshots: the device the media device hangs off
    usb_device: str | None  # BUS-PORT of the USB device; None: its parent is no USB device
    devnode: str | None  # "/dev/media0" while registered
    info: DeviceInfo
    shared: bool  # allocated through the Media Device Allocator API
    refcount: int | None
    owner: str | None  # owner module; None: built in, or not shared (its refcnt: SystemSnapshot.owner_refcnt)
    owner_refs_from_sharers: int | None  # None: unknown (the device could not be read)
    holders: tuple[HolderView, ...]
    topology: Topology
    # per entity, aligned with topology.entities: what MEDIA_IOC_ENUM_ENTITIES adds
    # (its legacy type, and the info.dev major:minor of a devnode entity, 0:0 if none)
    entity_legacy: tuple[tuple[int, int, int], ...]
    devnames: dict[tuple[int, int], str]  # major:minor -> /dev path, for nodes that exist
    anomalies: tuple[str, ...] = ()
    inferred: frozenset[str] = frozenset()
    # the parent device, "BUS NAME" ("usb 1-1", "pci 0000:00:1f.3", "platform vimc.0");
    # None: none, or a source that leaves it to usb_device (see parent_device)
    parent: str | None = None
    # set when the ioctl facts are unknown: info (but its model, from sysfs), topology,
    # refcount, owner, holders then mean nothing
    unread: Unread | None = None
    bound: tuple[BoundDriver, ...] | None = None  # from sysfs; None: the source does not say
    media: str | None = None  # its name on the media bus ("media0"); None: the source does not say
    # the files open on its nodes (/dev/mediaN and the nodes of its interfaces, also once
    # removed from /dev), by pid and fd; None: not looked for.  hidden_openers: processes
    # whose files this user may not inspect (counted, never silently missing)
    open_files: tuple[OpenFileView, ...] | None = None
    hidden_openers: int | None = None
    host: str = ""  # the machine it lives on, with several sources ("" with one); its key then starts with it

    @property
    def local_key(self) -> str:
        """The key on its own machine (``key`` without the host several sources put first)."""
        return self.key[len(self.host) + 1 :] if self.host else self.key

    @property
    def registered(self) -> bool:
        return self.devnode is not None

    @property
    def name(self) -> str:
        """``media0``, or the key device's name while not registered."""
        if self.devnode:
            return self.devnode.rsplit("/", 1)[-1]
        return self.media or f"({self.usb_device or self.key})"

    @property
    def parent_device(self) -> str | None:
        """The parent as "BUS NAME", for sources that only name the USB key device too."""
        if self.parent is not None:
            return self.parent
        return f"usb {self.key}" if self.usb_device else None

    def fact(self, value: object) -> str:
        """``value`` as text, or "unknown (why)" when it is None because the device could not
        be read (exact mode still knows refcount and owner then)."""
        return self.unread.unknown if self.unread is not None and value is None else str(value)

    @property
    def registered_known(self) -> bool:
        """False when the device could not even be told registered (no /dev node read)."""
        return self.devnode is not None or self.unread is None

    @property
    def state(self) -> str:
        if self.anomalies:
            return "ANOMALY"
        if not self.registered:
            return "held, not registered"
        if self.holders and all(h.state == "deferred" for h in self.holders):
            return "deferred release"
        return "shared" if self.shared and len(self.holders) > 1 else "registered"


@dataclass(**RECORD)
class ModuleView:
    name: str
    refcnt: int | None  # None: built in (no /sys/module/NAME/refcnt)
    used_by: tuple[str, ...] = ()
    host: str = ""


@dataclass(**RECORD)
class InterfaceView:
    name: str
    cls: int
    subclass: int
    driver: str | None


@dataclass(**RECORD)
class UsbDeviceView:
    name: str
    vendor: int
    product_id: int
    product: str
    interfaces: tuple[InterfaceView, ...]
    nodes: tuple[str, ...]  # /dev nodes below it (video, dvb, sound, media)
    host: str = ""


@dataclass(**RECORD)
class HostView:
    """A machine a source reads remotely (``--source ssh:HOST``), as the device list heads
    its group: ``state`` "connected", "connecting" or "disconnected"; ``detail`` says why it
    is not connected, and when it is tried again."""

    name: str
    state: str
    detail: str = ""


@dataclass(**RECORD)
class SystemSnapshot:
    source: str  # "sim" | "live"
    seq: int  # the last event folded into it
    media_devices: tuple[MediaDeviceView, ...]
    modules: tuple[ModuleView, ...]
    usb_devices: tuple[UsbDeviceView, ...]
    open_files: tuple[OpenFileView, ...] = ()  # every open file on a device node (the simulation's close offers them)
    usb_drivers: tuple[str, ...] = ()  # /sys/bus/usb/drivers
    anomalies: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())  # e.g. "simulated kernel (variant mainline)"
    hosts: tuple[HostView, ...] = ()  # the machines of several sources, in the order given; () with one

    def device(self, key: str) -> MediaDeviceView | None:
        return next((d for d in self.media_devices if d.key == key), None)

    def module(self, name: str, host: str = "") -> ModuleView | None:
        return next((m for m in self.modules if m.name == name and m.host == host), None)

    def owner_refcnt(self, dev: MediaDeviceView) -> int | None:
        """``/sys/module/<owner>/refcnt`` of the device's owner module; None when it has none
        (built in, not shared) or it could not be read.  Kept once, with the module: a bind on
        one stick changes the owner's refcnt, not the other sticks' views."""
        module = self.module(dev.owner, dev.host) if dev.owner else None
        return module.refcnt if module is not None else None

    def usb(self, name: str, host: str = "") -> UsbDeviceView | None:
        return next((u for u in self.usb_devices if u.name == name and u.host == host), None)
