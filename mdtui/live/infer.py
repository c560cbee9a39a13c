"""The allocator's view, inferred from what userspace can see (the kernel exports no kref).

The rule, also in the README and marked "inferred" wherever it is shown:

* key device: the media device's parent; a USB *device* parent means the media device was
  allocated through ``media_device_usb_allocate()`` (shared), a USB *interface* parent means
  the driver owns it alone (uvcvideo);
* owner: ``MEDIA_IOC_DEVICE_INFO.driver``, the module that allocated it first;
* holders: each driver bound to one of the USB device's interfaces that has a device node
  among the graph's interfaces (au0828's video0, snd-usb-audio's controlC0); graph nodes that
  hang off the USB device itself (DVB's) count for au0828 when it is bound; one holder per
  driver, as the allocator counts one reference per driver instance.  A driver bound only
  to an interface it claimed (snd-usb-audio's streaming interface) holds nothing;
* a reference kept after unbind (au0828's deferred release): an interface still in the
  graph whose device is gone from sysfs (/sys/dev/char/MAJ:MIN) is a video device unregistered
  but not released, so its driver's reference on the media device is still held; it is kept
  by the files open on that device number (``/proc/PID/fd``, ``mdtui.live.openers``).  It is
  counted for the driver that had registered the node while it was bound (remembered from
  earlier reads), or for the owner when mdtui never saw it bound;
* refcount: the number of holders, those deferred references included;
* the owner module's refcnt is read from ``/sys/module/<owner>/refcnt``, and the share of it
  that sharers explain is the number of holders from other modules.
"""

from __future__ import annotations

from typing import Optional, Tuple

from allocator.mc.topology import Topology

from ..model import HolderView, OpenFileView, opened_as
from .sysfs import Sysfs, UsbDevice

#: (major, minor) of a device node
Devt = Tuple[int, int]
#: who registered a node while bound: (driver, module, interface)
NodeOwner = Tuple[str, Optional[str], str]

#: drivers that register device nodes on the USB device rather than on their interface
DEVICE_LEVEL_NODES = frozenset({"au0828"})
INFERRED = frozenset({"refcount", "owner", "holders", "shared"})


def holders(usb: UsbDevice, topology: Topology, graph_nodes: set[str], shared: bool, sysfs: Sysfs) -> list[HolderView]:
    chosen: dict[str, str] = {}
    for intf in usb.interfaces:  # interfaces in name order: the first one with a graph node
        if intf.driver and intf.driver not in chosen and graph_nodes.intersection(intf.nodes):
            chosen[intf.driver] = intf.name
    below_interfaces = {n for intf in usb.interfaces for n in intf.nodes}
    if shared and graph_nodes.intersection(set(usb.nodes) - below_interfaces):
        for intf in usb.interfaces:
            if intf.driver in DEVICE_LEVEL_NODES and intf.driver not in chosen:
                chosen[intf.driver] = intf.name
    return [
        HolderView(driver, sysfs.driver_module(driver), interface, "bound", "bound (inferred)")
        for driver, interface in sorted(chosen.items(), key=lambda kv: kv[1])
    ]


def node_owners(
    usb: UsbDevice, devnames: dict[Devt, str], holders: list[HolderView] | tuple[HolderView, ...]
) -> dict[Devt, NodeOwner]:
    """Which holder registered each graph node: the driver bound to the interface the node
    sits below, or, for a node on the USB device itself, the device-level driver among them."""
    by_path = {path: devt for devt, path in devnames.items()}
    held = {h.interface: h for h in holders}
    out: dict[Devt, NodeOwner] = {}
    for intf in usb.interfaces:
        for node in intf.nodes:
            if node in by_path and intf.name in held:
                out[by_path[node]] = (held[intf.name].driver, held[intf.name].module, intf.name)
    below = {n for intf in usb.interfaces for n in intf.nodes}
    device_level = [h for h in holders if h.driver in DEVICE_LEVEL_NODES]
    for node in set(usb.nodes) - below:
        if node in by_path and device_level:
            h = device_level[0]
            out[by_path[node]] = (h.driver, h.module, h.interface)
    return out


def deferred(
    topology: Topology,
    devnames: dict[Devt, str],
    owners: dict[Devt, NodeOwner],
    fallback: NodeOwner | None,
    kept: dict[Devt, list[OpenFileView]],
    unbound_at: dict[str, float],
) -> list[HolderView]:
    """The references kept after unbind: one per driver whose registered nodes are still in
    the graph but gone from sysfs, kept by the files open on them (see the module)."""
    groups: dict[NodeOwner, list[Devt]] = {}
    for i in topology.interfaces:
        devt = (i.major, i.minor)
        if i.major and devt not in devnames:
            owner = owners.get(devt, fallback)
            if owner is not None:
                groups.setdefault(owner, []).append(devt)
    out = []
    for (driver, module, interface), numbers in groups.items():
        files = tuple(k for devt in sorted(numbers) for k in kept.get(devt, ()))
        nodes = ", ".join(sorted({opened_as(k.node) for k in files})) or "an open V4L2 file"
        reason = f"unbound, kept by open {nodes}"
        out.append(HolderView(driver, module, interface, "deferred", reason, unbound_at.get(interface), files))
    return out
