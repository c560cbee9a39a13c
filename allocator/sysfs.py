"""The sysfs tree (and ``/dev``) the driver core shows for a simulated kernel, as data.

``layout(view)`` yields one ``Entry`` per directory, file and symlink, with absolute paths as
on a machine (``/sys/...``, ``/dev/...``); writing them out is the reader's business (the rig
does it: ``mdtui.rig.tree``).  The layout, as drivers/base and the subsystems make it:

* ``/sys/devices/<devpath>/`` per registered device: one file per attribute (value and a
  newline), ``uevent`` (MAJOR, MINOR, DEVNAME, DEVTYPE, DRIVER, subsystem extras), ``dev``,
  a ``subsystem`` link to its bus or class, a ``driver`` link when bound;
* ``/sys/bus/usb/devices/NAME`` and ``/sys/bus/media/devices/mediaN`` links to the devices;
  ``/sys/bus/usb/drivers/DRIVER/`` with a link per bound interface, ``bind``, ``unbind`` and
  a ``module`` link; ``/sys/class/{video4linux,dvb,sound}/NAME`` links;
* ``/sys/dev/char/MAJOR:MINOR`` links; ``/sys/module/NAME/{refcnt,initstate,holders/}`` for
  loaded modules;
* ``/dev/<devname>``: an empty file per node (what a node is made of is the writer's choice).

Links are relative, as in sysfs, so the tree can be written anywhere.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from typing import NamedTuple

from .device import Device, dev_uevent
from .view import KernelView, ModuleState

CLASSES = {"video4linux", "dvb", "sound"}

DIR, FILE, LINK = "dir", "file", "link"


class Entry(NamedTuple):
    """One directory, file (``data``: its content) or symlink (``data``: its target, relative
    to the link's directory, as ``readlink`` shows it)."""

    kind: str
    path: str
    data: str = ""


def _link(link: str, target: str) -> Entry:
    return Entry(LINK, link, posixpath.relpath(target, posixpath.dirname(link)))


def refcnt(module: ModuleState) -> Entry:
    """``/sys/module/NAME/refcnt``."""
    return Entry(FILE, f"/sys/module/{module.name}/refcnt", f"{module.refcnt}\n")


def layout(view: KernelView) -> Iterator[Entry]:
    """Every entry of the tree, each directory before what it holds."""
    for dev in view.devices():
        yield from _device(dev)
    for name, module in view.usb_drivers().items():
        d = f"/sys/bus/usb/drivers/{name}"
        yield Entry(DIR, d)
        yield Entry(FILE, f"{d}/bind")
        yield Entry(FILE, f"{d}/unbind")
        if module is not None:
            yield _link(f"{d}/module", f"/sys/module/{module}")
    for module in view.modules():
        m = f"/sys/module/{module.name}"
        yield Entry(DIR, f"{m}/holders")
        yield refcnt(module)
        yield Entry(FILE, f"{m}/initstate", f"{module.initstate}\n")
        for user in module.holders:
            yield _link(f"{m}/holders/{user}", f"/sys/module/{user}")
    yield Entry(DIR, "/sys/bus/media/devices")


def _device(dev: Device) -> Iterator[Entry]:
    d = f"/sys{dev.devpath}"
    yield Entry(DIR, d)
    for name, value in dev.attrs.items():
        yield Entry(FILE, f"{d}/{name}", f"{value}\n")
    yield Entry(FILE, f"{d}/uevent", "".join(f"{k}={v}\n" for k, v in dev_uevent(dev).items()))
    if dev.subsystem:
        kind = "class" if dev.subsystem in CLASSES else "bus"
        yield _link(f"{d}/subsystem", f"/sys/{kind}/{dev.subsystem}")
        where = f"/sys/bus/{dev.subsystem}/devices" if kind == "bus" else f"/sys/class/{dev.subsystem}"
        yield _link(f"{where}/{dev.name}", d)
    if dev.devt is not None:
        yield _link(f"/sys/dev/char/{dev.devt[0]}:{dev.devt[1]}", d)
    if dev.devname:
        yield Entry(FILE, f"/dev/{dev.devname}")
    if dev.driver and dev.subsystem == "usb" and dev.devtype == "usb_interface":
        drv = f"/sys/bus/usb/drivers/{dev.driver}"
        yield _link(f"{d}/driver", drv)
        yield _link(f"{drv}/{dev.name}", d)
