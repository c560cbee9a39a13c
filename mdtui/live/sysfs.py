"""Reading what the kernel exposes in sysfs, tolerant of everything a live tree does.

Attributes can be missing (a device without a serial string), garbage (non-UTF-8, not a
number), or vanish between listing a directory and reading it (a device mid-removal): every
read here returns None for those instead of raising, and callers treat None as unknown.
Paths are only ever built from names this module listed itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def read(path: Path) -> str | None:
    try:
        return path.read_bytes().decode("utf-8", "replace").rstrip("\n")
    except OSError:  # ENOENT mid-removal, EACCES, EIO from a dying device, a directory
        return None


def read_int(path: Path, base: int = 10) -> int | None:
    text = read(path)
    try:
        return int(text.strip(), base) if text is not None else None
    except ValueError:
        return None


def uevent(path: Path) -> dict[str, str]:
    text = read(path / "uevent") or ""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key] = value
    return out


def link_name(path: Path) -> str | None:
    try:
        return os.path.basename(os.readlink(path))
    except OSError:
        return None


def listdir(path: Path) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


@dataclass
class Interface:
    name: str
    cls: int
    subclass: int
    driver: str | None
    nodes: list[str] = field(default_factory=list)  # /dev paths of devices below it


@dataclass
class UsbDevice:
    name: str
    path: Path
    vendor: int
    product_id: int
    product: str
    interfaces: list[Interface]
    nodes: list[str]  # every /dev path below the device


class Sysfs:
    def __init__(self, sys_root: str | Path = "/sys", dev_root: str | Path = "/dev") -> None:
        self.sys = Path(sys_root)
        self.dev = Path(dev_root)

    def media_devices(self) -> list[Path]:
        """The real directories of /sys/bus/media/devices/*."""
        base = self.sys / "bus" / "media" / "devices"
        out = []
        for name in listdir(base):
            try:
                out.append((base / name).resolve(strict=True))
            except OSError:
                continue  # gone since the listing
        return out

    def devnode(self, path: Path) -> str | None:
        name = uevent(path).get("DEVNAME")
        return str(self.dev / name) if name else None

    def char_node(self, major: int, minor: int) -> str | None:
        """The /dev path of a character device number, through /sys/dev/char."""
        name = uevent(self.sys / "dev" / "char" / f"{major}:{minor}").get("DEVNAME")
        return str(self.dev / name) if name else None

    def usb_device(self, path: Path) -> UsbDevice | None:
        env = uevent(path)
        if env.get("DEVTYPE") != "usb_device":
            return None
        name = path.name
        interfaces = []
        nodes: list[str] = []
        for entry in listdir(path):
            sub = path / entry
            if entry.startswith(f"{name}:") and not sub.is_symlink():
                intf = Interface(
                    entry,
                    read_int(sub / "bInterfaceClass", 16) or 0,
                    read_int(sub / "bInterfaceSubClass", 16) or 0,
                    link_name(sub / "driver"),
                )
                intf.nodes = self._nodes_below(sub)
                interfaces.append(intf)
        nodes = self._nodes_below(path)
        return UsbDevice(
            name,
            path,
            read_int(path / "idVendor", 16) or 0,
            read_int(path / "idProduct", 16) or 0,
            read(path / "product") or "",
            interfaces,
            nodes,
        )

    def _nodes_below(self, path: Path) -> list[str]:
        out = []
        for top, dirs, files in os.walk(path):  # does not follow the subsystem/driver links
            if "uevent" in files and top != str(path):
                name = uevent(Path(top)).get("DEVNAME")
                if name:
                    out.append(str(self.dev / name))
            dirs[:] = [d for d in dirs if d not in ("power", "holders")]
        return sorted(out)

    def usb_devices(self) -> list[UsbDevice]:
        base = self.sys / "bus" / "usb" / "devices"
        out = []
        for name in listdir(base):
            if ":" in name or name.startswith("usb"):
                continue
            try:
                dev = self.usb_device((base / name).resolve(strict=True))
            except OSError:
                continue
            if dev is not None:
                out.append(dev)
        return out

    def usb_drivers(self) -> list[str]:
        return listdir(self.sys / "bus" / "usb" / "drivers")

    def driver_module(self, driver: str) -> str | None:
        if driver not in self.usb_drivers():
            return None
        return link_name(self.sys / "bus" / "usb" / "drivers" / driver / "module")

    def modules(self) -> list[tuple[str, int | None, list[str]]]:
        """Loaded modules: those with a refcnt (built-in ones have none, and are left out)."""
        out = []
        for name in listdir(self.sys / "module"):
            refcnt = read_int(self.sys / "module" / name / "refcnt")
            if refcnt is not None:
                out.append((name, refcnt, listdir(self.sys / "module" / name / "holders")))
        return out
