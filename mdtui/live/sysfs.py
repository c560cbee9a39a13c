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
    """Reads a sysfs tree.  On the real /sys, devices are enumerated through pyudev (libudev);
    any other root (a test tree) is listed directly, since libudev always reads /sys."""

    def __init__(self, sys_root: str | Path = "/sys", dev_root: str | Path = "/dev") -> None:
        self.sys = Path(sys_root)
        self.dev = Path(dev_root)
        self._udev = _udev_context() if self.sys == Path("/sys") else None

    def _enumerate(self, subsystem: str, devtype: str | None = None) -> list[str] | None:
        """Sys paths of a subsystem's devices through libudev, or None to list directly."""
        if self._udev is None:
            return None
        try:
            found = self._udev.list_devices(subsystem=subsystem)
            if devtype is not None:
                found = found.match_property("DEVTYPE", devtype)
            return sorted(d.sys_path for d in found)
        except OSError:
            return None

    def media_devices(self) -> list[Path]:
        """The real directories of the media bus's devices."""
        paths = self._enumerate("media")
        if paths is not None:
            return [Path(p) for p in paths]
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

    def usb_devices(self, reuse: dict[str, UsbDevice] | None = None) -> list[UsbDevice]:
        """Every USB device (not hubs' root devices, not interfaces); those in ``reuse``
        (real path -> an earlier read) are taken from there instead of read again."""
        base = self.sys / "bus" / "usb" / "devices"
        listed = self._enumerate("usb", "usb_device")
        names = [Path(p).name for p in listed] if listed is not None else listdir(base)
        out = []
        for name in names:
            if ":" in name or name.startswith("usb"):
                continue
            try:
                path = (base / name).resolve(strict=True)
            except OSError:
                continue  # unplugged since the listing
            dev = reuse.get(str(path)) if reuse else None
            if dev is None:
                dev = self.usb_device(path)
            if dev is not None:
                out.append(dev)
        return out

    def usb_drivers(self) -> list[str]:
        return listdir(self.sys / "bus" / "usb" / "drivers")

    def driver_module(self, driver: str) -> str | None:
        """The module behind a USB driver; ``driver`` is a name read from sysfs itself."""
        if "/" in driver or driver in ("", ".", ".."):
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


def _udev_context() -> object | None:
    """A pyudev context, or None where libudev cannot be loaded."""
    try:
        import pyudev

        return pyudev.Context()
    except (ImportError, OSError):
        return None
