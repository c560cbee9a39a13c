"""Write a simulated kernel out as the sysfs tree (and /dev) the real kernel would show.

Layout, as drivers/base and the subsystems make it:

* ``sys/devices/<devpath>/`` per registered device: one file per attribute (value and a
  newline), ``uevent`` (MAJOR, MINOR, DEVNAME, DEVTYPE, DRIVER, subsystem extras), ``dev``,
  a ``subsystem`` link to its bus or class, a ``driver`` link when bound;
* ``sys/bus/usb/devices/NAME`` and ``sys/bus/media/devices/mediaN`` links to the devices;
  ``sys/bus/usb/drivers/DRIVER/`` with a link per bound interface, ``bind``, ``unbind`` and
  a ``module`` link; ``sys/class/{video4linux,dvb,sound}/NAME`` links;
* ``sys/dev/char/MAJOR:MINOR`` links; ``sys/module/NAME/{refcnt,holders/}`` for loaded
  modules;
* ``dev/<devname>``: a regular file per node (the rig makes character devices instead).

Links are relative, as in sysfs, so the tree can live anywhere.  ``write_tree`` rewrites
the whole tree; it is for tests and the rig, not a hot path.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from allocator import Kernel
from allocator.device import Device

CLASSES = {"video4linux", "dvb", "sound"}


def _link(target: Path, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(os.path.relpath(target, link.parent))


def _uevent(dev: Device) -> str:
    env = {}
    if dev.devt is not None:
        env["MAJOR"], env["MINOR"] = str(dev.devt[0]), str(dev.devt[1])
    if dev.devname:
        env["DEVNAME"] = dev.devname
    if dev.devtype:
        env["DEVTYPE"] = dev.devtype
    if dev.driver:
        env["DRIVER"] = dev.driver
    env.update(dev.uevent_env)
    return "".join(f"{k}={v}\n" for k, v in env.items())


def write_tree(k: Kernel, root: Path) -> None:
    sys_, dev_root = root / "sys", root / "dev"
    for path in (sys_, dev_root):
        if path.exists():
            shutil.rmtree(path)
    devices = dict(k.devices.devices)
    for devpath, dev in devices.items():
        d = sys_ / devpath.lstrip("/")
        d.mkdir(parents=True, exist_ok=True)
        for name, value in dev.attrs.items():
            (d / name).write_text(f"{value}\n")
        (d / "uevent").write_text(_uevent(dev))
        if dev.subsystem:
            kind = "class" if dev.subsystem in CLASSES else "bus"
            _link(sys_ / kind / dev.subsystem, d / "subsystem")
            if kind == "bus":
                _link(d, sys_ / "bus" / dev.subsystem / "devices" / dev.name)
            else:
                _link(d, sys_ / "class" / dev.subsystem / dev.name)
        if dev.devt is not None:
            _link(d, sys_ / "dev" / "char" / f"{dev.devt[0]}:{dev.devt[1]}")
        if dev.devname:
            node = dev_root / dev.devname
            node.parent.mkdir(parents=True, exist_ok=True)
            node.write_bytes(b"")
        if dev.driver and dev.subsystem == "usb" and dev.devtype == "usb_interface":
            drv = sys_ / "bus" / "usb" / "drivers" / dev.driver
            _link(drv, d / "driver")
            _link(d, drv / dev.name)
    for name, drv in k.usb.drivers.items():
        d = sys_ / "bus" / "usb" / "drivers" / name
        d.mkdir(parents=True, exist_ok=True)
        for f in ("bind", "unbind"):
            (d / f).write_text("")
        if drv.module is not None:
            _link(sys_ / "module" / drv.module.name, d / "module")
    for name, mod in k.modules.items():
        m = sys_ / "module" / name
        (m / "holders").mkdir(parents=True, exist_ok=True)
        (m / "refcnt").write_text(f"{mod.refcnt}\n")
        (m / "initstate").write_text(f"{mod.state.value}\n")
        for user in k.modules.values():
            if name in user.deps:
                _link(sys_ / "module" / user.name, m / "holders" / user.name)
    (sys_ / "bus" / "media" / "devices").mkdir(parents=True, exist_ok=True)
