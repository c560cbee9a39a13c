"""Reading what the kernel exposes in sysfs, tolerant of everything a live tree does.

Attributes can be missing (a device without a serial string), garbage (non-UTF-8, not a
number, larger than any attribute: sysfs gives at most a page), or vanish between listing a
directory and reading it (a device mid-removal); directories can refuse to be listed or
resolved (EACCES, a symlink loop: ELOOP).  Every read here returns None (or an empty list)
for those instead of raising, and callers treat None as unknown.  Paths are only ever built
from names this module listed itself.

Every system call goes through one seam, ``Fs``, so tests can inject the failures a live
tree has (EACCES as root, where ``chmod 000`` denies nothing; a path removed between the
listing and the read).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

#: sysfs attributes are at most a page; more than this is not an attribute worth reading
MAX_ATTRIBUTE = 64 * 1024


class Fs:
    """The system calls the reader makes.  ``realpath`` raises OSError (ELOOP for a symlink
    loop, never pathlib's RuntimeError); ``walk`` does not follow symlinks (sysfs's
    subsystem/driver links lead back up the tree)."""

    def read(self, path: Path, limit: int = MAX_ATTRIBUTE) -> bytes:
        with open(path, "rb") as f:
            return f.read(limit)

    def listdir(self, path: Path) -> list[str]:
        return os.listdir(path)

    def readlink(self, path: Path) -> str:
        return os.readlink(path)

    def realpath(self, path: Path) -> Path:
        os.stat(path)  # what resolving it fails with (ELOOP, EACCES, ENOENT), as realpath(strict=True) on 3.10
        return Path(os.path.realpath(path))

    def islink(self, path: Path) -> bool:
        return os.path.islink(path)

    def walk(self, path: Path) -> Iterator[tuple[str, list[str], list[str]]]:
        return os.walk(path)


def describe(exc: OSError) -> str:
    """``Too many levels of symbolic links (ELOOP)``: the errno named, for the user."""
    code = exc.errno or errno.EIO
    return f"{os.strerror(code)} ({errno.errorcode.get(code, str(code))})"


# -- the module-level readers: the real file system, for callers without a Sysfs --------


def read(path: Path, fs: Fs | None = None) -> str | None:
    try:
        data = (fs or _FS).read(path)
    except (OSError, ValueError):  # ENOENT mid-removal, EACCES, EIO from a dying device, a directory
        return None
    return data.decode("utf-8", "replace").rstrip("\n")


def read_int(path: Path, base: int = 10, fs: Fs | None = None) -> int | None:
    text = read(path, fs)
    try:
        return int(text.strip(), base) if text is not None else None
    except ValueError:  # not a number, or more digits than int() takes
        return None


def uevent(path: Path, fs: Fs | None = None) -> dict[str, str]:
    return parse_uevent(read(path / "uevent", fs) or "")


def parse_uevent(text: str) -> dict[str, str]:
    """KEY=value lines; anything else is skipped."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key] = value
    return out


def link_name(path: Path, fs: Fs | None = None) -> str | None:
    try:
        return os.path.basename((fs or _FS).readlink(path)) or None
    except (OSError, ValueError):
        return None


def listdir(path: Path, fs: Fs | None = None) -> list[str]:
    try:
        return sorted((fs or _FS).listdir(path))
    except (OSError, ValueError):
        return []


_FS = Fs()


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


@dataclass(frozen=True)
class MediaEntry:
    """One name listed in /sys/bus/media/devices: its real directory, or why it has none."""

    name: str
    path: Path | None
    error: str | None = None  # "cannot resolve /sys/bus/media/devices/media0: ... (ELOOP)"
    errname: str | None = None  # "ELOOP"


@dataclass(frozen=True)
class Parent:
    """The device a media device's directory sits in (``mdev->dev``): its bus is the
    ``subsystem`` link's name (a USB device and a USB interface both say ``usb``, told apart
    by DEVTYPE); a directory without a uevent file is no device (the class directory under
    ``/sys/devices/virtual`` that a media device without a parent is put in)."""

    path: Path
    name: str
    is_device: bool
    bus: str | None
    devtype: str | None
    driver: str | None

    @property
    def label(self) -> str | None:
        """``usb 1-1``, ``pci 0000:00:1f.3``, ``platform vimc.0``; None: no parent device."""
        if not self.is_device:
            return None
        return f"{self.bus} {self.name}" if self.bus else self.name

    @property
    def is_usb_device(self) -> bool:
        return self.bus == "usb" and self.devtype == "usb_device"

    @property
    def is_usb_interface(self) -> bool:
        return self.bus == "usb" and self.devtype == "usb_interface"


class Sysfs:
    """Reads a sysfs tree.  On the real /sys, devices are enumerated through pyudev (libudev);
    any other root (a test tree) is listed directly, since libudev always reads /sys."""

    def __init__(self, sys_root: str | Path = "/sys", dev_root: str | Path = "/dev", fs: Fs | None = None) -> None:
        self.sys = Path(sys_root)
        self.dev = Path(dev_root)
        self.fs = fs or _FS
        self._udev = _udev_context() if self.sys == Path("/sys") and fs is None else None

    # -- the readers, through this tree's seam -------------------------------------------

    def read(self, path: Path) -> str | None:
        return read(path, self.fs)

    def read_int(self, path: Path, base: int = 10) -> int | None:
        return read_int(path, base, self.fs)

    def uevent(self, path: Path) -> dict[str, str]:
        return uevent(path, self.fs)

    def link_name(self, path: Path) -> str | None:
        return link_name(path, self.fs)

    def listdir(self, path: Path) -> list[str]:
        return listdir(path, self.fs)

    def realpath(self, path: Path) -> Path | None:
        """The real path, or None (gone, denied, a symlink loop)."""
        try:
            return self.fs.realpath(path)
        except (OSError, ValueError):
            return None

    # -- enumeration -------------------------------------------------------------------

    def _enumerate(self, subsystem: str, devtype: str | None = None) -> list[str] | None:
        """Sys paths of a subsystem's devices through libudev, or None to list directly."""
        if self._udev is None:
            return None
        try:
            found = self._udev.list_devices(subsystem=subsystem)  # type: ignore[attr-defined]
            if devtype is not None:
                found = found.match_property("DEVTYPE", devtype)
            return sorted(d.sys_path for d in found)
        except OSError:
            return None

    def media_entries(self) -> list[MediaEntry]:
        """Every media device on the media bus, each with its real directory or the reason
        it has none: a device that cannot be resolved is still listed, never dropped."""
        base = self.sys / "bus" / "media" / "devices"
        found = {Path(p).name: MediaEntry(Path(p).name, Path(p)) for p in self._enumerate("media") or ()}
        # libudev silently skips a device whose directory it cannot read: the bus's own
        # listing names it, and it is shown with the reason
        names = sorted(set(found) | set(self.listdir(base)))
        return [found[name] if name in found else self._entry(base, name) for name in names]

    def _entry(self, base: Path, name: str) -> MediaEntry:
        try:
            return MediaEntry(name, self.fs.realpath(base / name))
        except OSError as exc:  # ELOOP, EACCES on a directory on the way, gone since the listing
            code = exc.errno or errno.EIO
            why = f"cannot resolve {_show(base / name, self.sys)}: {describe(exc)}"
            return MediaEntry(name, None, why, errno.errorcode.get(code, str(code)))
        except ValueError as exc:
            return MediaEntry(name, None, f"cannot resolve {_show(base / name, self.sys)}: {exc}")

    def media_devices(self) -> list[Path]:
        """The real directories of the media bus's devices (those that resolve)."""
        return [e.path for e in self.media_entries() if e.path is not None]

    def parent(self, media_path: Path) -> Parent:
        path = media_path.parent
        text = self.read(path / "uevent")
        env = parse_uevent(text or "")
        bus = self.link_name(path / "subsystem")
        devtype = env.get("DEVTYPE")
        if bus is None and devtype in ("usb_device", "usb_interface"):
            bus = "usb"  # a tree without subsystem links
        is_device = text is not None or bus is not None
        return Parent(path, path.name, is_device, bus, devtype, self.link_name(path / "driver"))

    def devnode(self, path: Path) -> str | None:
        name = self.uevent(path).get("DEVNAME")
        return str(self.dev / name) if name else None

    def char_node(self, major: int, minor: int) -> str | None:
        """The /dev path of a character device number, through /sys/dev/char."""
        name = self.uevent(self.sys / "dev" / "char" / f"{major}:{minor}").get("DEVNAME")
        return str(self.dev / name) if name else None

    def usb_device(self, path: Path) -> UsbDevice | None:
        env = self.uevent(path)
        if env.get("DEVTYPE") != "usb_device":
            return None
        name = path.name
        interfaces = []
        for entry in self.listdir(path):
            sub = path / entry
            if entry.startswith(f"{name}:") and not self.fs.islink(sub):
                intf = Interface(
                    entry,
                    self.read_int(sub / "bInterfaceClass", 16) or 0,
                    self.read_int(sub / "bInterfaceSubClass", 16) or 0,
                    self.link_name(sub / "driver"),
                )
                intf.nodes = self._nodes_below(sub)
                interfaces.append(intf)
        return UsbDevice(
            name,
            path,
            self.read_int(path / "idVendor", 16) or 0,
            self.read_int(path / "idProduct", 16) or 0,
            self.read(path / "product") or "",
            interfaces,
            self._nodes_below(path),
        )

    def _nodes_below(self, path: Path) -> list[str]:
        out = []
        try:
            for top, dirs, files in self.fs.walk(path):  # does not follow the subsystem/driver links
                if "uevent" in files and top != str(path):
                    name = self.uevent(Path(top)).get("DEVNAME")
                    if name:
                        out.append(str(self.dev / name))
                dirs[:] = [d for d in dirs if d not in ("power", "holders")]
        except (OSError, ValueError):
            pass  # what was found before the tree went away
        return sorted(out)

    def usb_devices(self, reuse: dict[str, UsbDevice] | None = None) -> list[UsbDevice]:
        """Every USB device (not hubs' root devices, not interfaces); those in ``reuse``
        (real path -> an earlier read) are taken from there instead of read again."""
        base = self.sys / "bus" / "usb" / "devices"
        listed = self._enumerate("usb", "usb_device")
        names = [Path(p).name for p in listed] if listed is not None else self.listdir(base)
        out = []
        for name in names:
            if ":" in name or name.startswith("usb"):
                continue
            path = self.realpath(base / name)
            if path is None:
                continue  # unplugged since the listing, or a loop: no USB device to read
            dev = reuse.get(str(path)) if reuse else None
            if dev is None:
                dev = self.usb_device(path)
            if dev is not None:
                out.append(dev)
        return out

    def usb_drivers(self) -> list[str]:
        return self.listdir(self.sys / "bus" / "usb" / "drivers")

    def driver_module(self, driver: str, bus: str = "usb") -> str | None:
        """The module behind a driver; ``driver`` is a name read from sysfs itself."""
        if "/" in driver or driver in ("", ".", "..") or "/" in bus or bus in ("", ".", ".."):
            return None
        return self.link_name(self.sys / "bus" / bus / "drivers" / driver / "module")

    def modules(self) -> list[tuple[str, int | None, list[str]]]:
        """Loaded modules: those with a refcnt (built-in ones have none, and are left out)."""
        out = []
        for name in self.listdir(self.sys / "module"):
            refcnt = self.read_int(self.sys / "module" / name / "refcnt")
            if refcnt is not None:
                out.append((name, refcnt, self.listdir(self.sys / "module" / name / "holders")))
        return out


def _show(path: Path, sys_root: Path) -> str:
    """A sysfs path as the user would type it (/sys/...), whatever root the tree lives in."""
    try:
        return "/sys/" + str(path.relative_to(sys_root))
    except ValueError:
        return str(path)


def _udev_context() -> object | None:
    """A pyudev context, or None where libudev cannot be loaded."""
    try:
        import pyudev

        return pyudev.Context()
    except (ImportError, OSError):
        return None
