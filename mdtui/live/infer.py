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
* refcount: the number of holders; blind to a reference kept by an open file after its
  driver was unbound (au0828's deferred release), which exact mode sees;
* the owner module's refcnt is read from ``/sys/module/<owner>/refcnt``, and the share of it
  that sharers explain is the number of holders from other modules.
"""

from __future__ import annotations

from allocator.mc.topology import Topology

from ..model import HolderView
from .sysfs import Sysfs, UsbDevice

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
