"""What the scripts ask of mdtui when Tab is pressed (``mdtui completion --list``): the
media devices as ``--device`` takes them, or the simulated kernel's catalog names; one per
line, and nothing at all on any error or after ``LIST_DEADLINE``."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..live.sysfs import Sysfs

#: the ioctl seam of mdtui/live/media.py: (fd, request, buffer)
Ioctl = Callable[[int, int, object], object]

LISTS = ("devices", "catalog")
#: how long ``--list`` may take before it gives up (and prints nothing)
LIST_DEADLINE = 2.0


class _Late(Exception):
    """The deadline passed."""


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Raise ``_Late`` in the block after ``seconds`` (main thread only; elsewhere no limit)."""

    def late(_signum: int, _frame: object) -> None:
        raise _Late

    try:
        previous = signal.signal(signal.SIGALRM, late)
    except ValueError:  # not the main thread
        yield
        return
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def candidates(what: str) -> list[str]:
    """``devices``: each media device's node name, bus_info and driver; ``catalog``: the
    simulated kernel's catalog names.  Empty on any error or after ``LIST_DEADLINE``."""
    try:
        with _deadline(LIST_DEADLINE):
            if what == "catalog":
                from allocator.catalog import CATALOG

                return list(CATALOG)
            if what == "devices":
                return devices()
    except Exception:  # _Late too
        pass
    return []


def devices(sysfs: Sysfs | None = None, ioctl: Ioctl | None = None) -> list[str]:
    """The media devices' names as ``--device`` takes them, as the source 'auto' would read
    them (mdtui/cli.py): this machine when /sys/bus/media has devices, else the simulated
    default world."""
    from ..live.sysfs import Sysfs

    live = sysfs or Sysfs()
    paths = live.media_devices()
    found = live_devices(live, paths, ioctl) if paths else sim_devices()
    return list(dict.fromkeys(n for n in found if n))


def sim_devices() -> list[str]:
    """The default simulated world's media devices: node name, bus_info, driver."""
    from ..sources.sim import build

    source, _ = build()
    out = []
    for dev in source.snapshot().media_devices:
        if dev.devnode:
            out.append(os.path.basename(dev.devnode))
        out += [dev.info.bus_info, dev.info.driver]
    return out


def live_devices(sysfs: Sysfs, paths: list[Path], ioctl: Ioctl | None = None) -> list[str]:
    """This machine's media devices: the node name from sysfs, bus_info and driver from
    MEDIA_IOC_DEVICE_INFO when the node can be opened (often root or the video group only)."""
    from ..live import media

    out = []
    for path in paths:
        name = sysfs.uevent(path).get("DEVNAME")
        if not name or name.startswith("/") or ".." in name.split("/"):
            continue
        out.append(os.path.basename(name))
        node = str(sysfs.dev / name)
        try:
            fd = os.open(node, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            info = media.device_info(fd, node, ioctl or media.kernel_ioctl)
            out += [info.bus_info, info.driver]
        except Exception:  # a candidate less, never an error
            pass
        finally:
            os.close(fd)
    return out
