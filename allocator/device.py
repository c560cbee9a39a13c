"""``struct device`` and the uevents the driver core sends for it.

Models drivers/base/core.c as far as userspace can see it: a device has a name, a parent, a
subsystem (bus or class), maybe a ``dev_t`` and a ``/dev`` name, sysfs attributes, and a bound
driver.  ``device_add`` broadcasts ``add`` before the bus probes it, ``device_del`` broadcasts
``remove``; binding and unbinding a driver broadcast ``bind`` / ``unbind`` (KOBJ_BIND/UNBIND,
Linux 4.14+).  Every uevent carries the kernel's global SEQNUM.

A device's sysfs directory is its parent's plus its own ``dirname`` (``1-1:1.0``,
``video4linux/video0``, ``dvb/dvb0.frontend0``): the same paths the kernel builds.
"""

from __future__ import annotations

import itertools
import threading

from .events import UEVENT, EventBus

ROOT = "/devices"


class Device:
    """One node of the device tree."""

    __slots__ = (
        "attrs",
        "devname",
        "devpath",
        "devt",
        "devtype",
        "dirname",
        "driver",
        "name",
        "parent",
        "registered",
        "subsystem",
        "uevent_env",
    )

    def __init__(
        self,
        name: str,
        parent: Device | None,
        subsystem: str,
        *,
        dirname: str | None = None,
        devtype: str = "",
        devt: tuple[int, int] | None = None,
        devname: str = "",
        attrs: dict[str, str] | None = None,
        uevent_env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.parent = parent
        self.subsystem = subsystem
        self.dirname = dirname or name
        self.devtype = devtype
        self.devt = devt
        self.devname = devname
        self.attrs = attrs if attrs is not None else {}
        self.uevent_env = uevent_env or {}
        self.driver: str | None = None
        self.registered = False
        # a device never moves: its sysfs path is fixed when it is created
        self.devpath = f"{parent.devpath if parent is not None else ROOT}/{self.dirname}"
        if devt is not None:
            self.attrs.setdefault("dev", f"{devt[0]}:{devt[1]}")

    @property
    def node(self) -> str:
        """``/dev/...`` path, or "" for devices without a node."""
        return f"/dev/{self.devname}" if self.devname else ""

    def __repr__(self) -> str:
        return f"<Device {self.devpath}>"


def dev_str(dev: Device) -> str:
    """What ``dev_printk()`` prefixes a line with: ``dev_driver_string()`` (the bound driver,
    else the bus or class) and ``dev_name()``: ``usb 1-1``, ``au0828 1-1:1.0``, ``media media0``."""
    return f"{dev.driver or dev.subsystem} {dev.name}"


def dev_uevent(dev: Device, driver: bool = True) -> dict[str, str]:
    """``dev_uevent()``: what every uevent of ``dev`` carries besides ACTION, DEVPATH,
    SUBSYSTEM and SEQNUM, and all its ``uevent`` file shows: MAJOR, MINOR, DEVNAME, DEVTYPE,
    DRIVER (left out of an ``unbind``: ``driver=False``), then the bus's or class's own."""
    env = {}
    if dev.devt is not None:
        env["MAJOR"], env["MINOR"] = str(dev.devt[0]), str(dev.devt[1])
    if dev.devname:
        env["DEVNAME"] = dev.devname
    if dev.devtype:
        env["DEVTYPE"] = dev.devtype
    if driver and dev.driver:
        env["DRIVER"] = dev.driver
    env.update(dev.uevent_env)
    return env


class DeviceCore:
    """The set of registered devices and the uevent broadcaster (lib/kobject_uevent.c)."""

    def __init__(self, bus: EventBus) -> None:
        self._events = bus
        self._lock = threading.Lock()
        self._seqnum = itertools.count(1)
        self.devices: dict[str, Device] = {}
        self.nodes: dict[str, Device] = {}

    def uevent(self, dev: Device, action: str) -> None:
        env = {"ACTION": action, "DEVPATH": dev.devpath, "SUBSYSTEM": dev.subsystem}
        env.update(dev_uevent(dev, driver=action != "unbind"))
        env["SEQNUM"] = str(next(self._seqnum))
        self._events.emit(UEVENT, dev.name, f"{action} {dev.devpath}", env)

    def device_add(self, dev: Device) -> None:
        with self._lock:
            self.devices[dev.devpath] = dev
            if dev.devname:
                self.nodes[dev.node] = dev
            dev.registered = True
        self.uevent(dev, "add")

    def device_del(self, dev: Device) -> None:
        with self._lock:
            if not dev.registered:
                return
            dev.registered = False
            self.devices.pop(dev.devpath, None)
            if dev.devname and self.nodes.get(dev.node) is dev:
                del self.nodes[dev.node]
        self.uevent(dev, "remove")

    def children(self, dev: Device) -> list[Device]:
        prefix = dev.devpath + "/"
        with self._lock:
            return [d for p, d in self.devices.items() if p.startswith(prefix)]


class MinorAllocator:
    """First-free numbers out of a fixed range, as the kernel's bitmaps and IDAs hand them out
    (media minors, video minors, DVB adapters, sound cards, i2c buses)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._used: set[int] = set()
        self._lock = threading.Lock()

    def get(self) -> int | None:
        with self._lock:
            for n in range(self._limit):
                if n not in self._used:
                    self._used.add(n)
                    return n
        return None

    def put(self, n: int) -> None:
        with self._lock:
            self._used.discard(n)

    def in_use(self) -> frozenset[int]:
        with self._lock:
            return frozenset(self._used)
