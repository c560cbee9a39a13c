"""The state model every view renders: immutable snapshots of a machine's media devices.

A source (the simulated kernel, or the live system) produces a ``SystemSnapshot``; widgets,
``dump`` and ``watch`` only ever read snapshots.  Fields a live source can only infer (the
allocator keeps its refcount and owner to itself) are named in ``MediaDeviceView.inferred``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from allocator.mc.topology import DeviceInfo, Topology


@dataclass(frozen=True, slots=True)
class HolderView:
    driver: str
    module: str | None
    interface: str
    state: str  # "bound" | "deferred"
    reason: str


@dataclass(frozen=True, slots=True)
class MediaDeviceView:
    """One media device, as far as a user can know it."""

    key: str  # stable identity across snapshots: the device the media device hangs off
    usb_device: str  # BUS-PORT of the USB device
    devnode: str | None  # "/dev/media0" while registered
    info: DeviceInfo
    shared: bool  # allocated through the Media Device Allocator API
    refcount: int | None
    owner: str | None  # owner module; None: built in, or not shared
    owner_refcnt: int | None
    owner_refs_from_sharers: int
    holders: tuple[HolderView, ...]
    topology: Topology
    # per entity, aligned with topology.entities: what MEDIA_IOC_ENUM_ENTITIES adds
    # (its legacy type, and the info.dev major:minor of a devnode entity, 0:0 if none)
    entity_legacy: tuple[tuple[int, int, int], ...]
    devnames: dict[tuple[int, int], str]  # major:minor -> /dev path, for nodes that exist
    anomalies: tuple[str, ...] = ()
    inferred: frozenset[str] = frozenset()

    @property
    def registered(self) -> bool:
        return self.devnode is not None

    @property
    def name(self) -> str:
        """``media0``, or the key device's name while not registered."""
        return self.devnode.rsplit("/", 1)[-1] if self.devnode else f"({self.usb_device})"

    @property
    def state(self) -> str:
        if self.anomalies:
            return "ANOMALY"
        if not self.registered:
            return "held, not registered"
        if self.holders and all(h.state == "deferred" for h in self.holders):
            return "deferred release"
        return "shared" if self.shared and len(self.holders) > 1 else "registered"


@dataclass(frozen=True, slots=True)
class ModuleView:
    name: str
    refcnt: int | None  # None: built in (no /sys/module/NAME/refcnt)
    used_by: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class InterfaceView:
    name: str
    cls: int
    subclass: int
    driver: str | None


@dataclass(frozen=True, slots=True)
class UsbDeviceView:
    name: str
    vendor: int
    product_id: int
    product: str
    interfaces: tuple[InterfaceView, ...]
    nodes: tuple[str, ...]  # /dev nodes below it (video, dvb, sound, media)


@dataclass(frozen=True, slots=True)
class SystemSnapshot:
    source: str  # "sim" | "live"
    seq: int  # the last event folded into it
    media_devices: tuple[MediaDeviceView, ...]
    modules: tuple[ModuleView, ...]
    usb_devices: tuple[UsbDeviceView, ...]
    open_files: tuple[tuple[int, str], ...] = ()
    usb_drivers: tuple[str, ...] = ()  # /sys/bus/usb/drivers
    anomalies: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())  # e.g. "simulated kernel (variant mainline)"

    def device(self, key: str) -> MediaDeviceView | None:
        return next((d for d in self.media_devices if d.key == key), None)

    def module(self, name: str) -> ModuleView | None:
        return next((m for m in self.modules if m.name == name), None)

    def usb(self, name: str) -> UsbDeviceView | None:
        return next((u for u in self.usb_devices if u.name == name), None)
