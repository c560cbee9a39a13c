"""``Kernel``: one simulated machine, and the calls a user makes on it.

    k = Kernel()                        # or Kernel(variant="fixed"), Kernel(builtin=("snd_usb_audio",))
    k.modprobe("au0828"); k.modprobe("snd_usb_audio")
    name = k.plug("hvr950q")            # "1-1"
    k.unbind("au0828", "1-1:1.0"); k.bind("au0828", "1-1:1.0")
    fd = k.open("/dev/video0"); k.close(fd)
    k.rmmod("au0828")                   # KernelError(EBUSY) while in use
    k.view.media_devices()              # .refcount, .owner, .owner_refcnt, .mdev
    k.subscribe(print)                  # every later event, in order
    k.check()                           # every invariant violation

Every call that fails raises ``KernelError`` (an ``OSError``) and also puts an ``error`` event
in the stream, so a watcher sees refused actions as well as performed ones.
"""

from __future__ import annotations

import errno
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple, ParamSpec, TypeVar

from .check import Violation, check
from .device import DeviceCore, MinorAllocator
from .errors import KernelError
from .events import ERROR, Event, EventBus, Printk
from .faults import FaultInjector
from .files import FileTable
from .loader import ModuleLoader
from .mc.devnode import MediaBus
from .mc.uapi import version_code
from .mc_dev_allocator import allocator_class
from .module import Module
from .task import SHELL
from .usbcore import UsbCore
from .view import KernelView

RELEASE = (6, 12, 0)
#: CONFIG_DVB_MAX_ADAPTERS of the simulated kernel (Kconfig's default is 16; 64 here so that a
#: machine with 64 sticks, as the memory benchmark plugs, gets a DVB adapter on each)
DVB_MAX_ADAPTERS = 64

P = ParamSpec("P")
R = TypeVar("R")


class Anomaly(NamedTuple):
    seq: int
    device: str
    text: str


class Kernel:
    def __init__(
        self,
        variant: str = "mainline",
        *,
        builtin: tuple[str, ...] = (),
        clock: Callable[[], float] | None = None,
        lookup: str = "index",
        history: int = 2048,
    ) -> None:
        self.release = ".".join(map(str, RELEASE))
        self.events = EventBus(clock or _since_boot(), history)
        self.printk = Printk(self.events)
        self.anomalies: list[Anomaly] = []
        self.devices = DeviceCore(self.events)
        self.files = FileTable(self.devices, self.events.now)
        self.faults = FaultInjector()
        self.usb = UsbCore(self.devices, self.printk)
        self.loader = ModuleLoader(self, self.events, tuple(builtin), self.release)
        self.media_bus = MediaBus(self.devices, self.printk, self.files, self.module, version_code(*RELEASE))
        self.allocator = allocator_class(variant)(self.media_bus, self.printk, self.faults, self.warn, lookup)
        self.video_minors = MinorAllocator(256)
        self.videodev_lock = threading.Lock()  # v4l2-dev.c's: registration state vs v4l2_open()
        self.video_numbers = {"video": MinorAllocator(256), "vbi": MinorAllocator(256)}
        self.dvb_minors = MinorAllocator(512)
        self.dvb_adapters = MinorAllocator(DVB_MAX_ADAPTERS)
        self.snd_cards = MinorAllocator(32)
        self.i2c_buses = MinorAllocator(256)
        self.view = KernelView(self)
        self.loader.boot()

    # -- state -------------------------------------------------------------------------

    @property
    def variant(self) -> str:
        return self.allocator.variant

    @property
    def modules(self) -> dict[str, Module]:
        """Loaded modules by name (``/sys/module/NAME``); built-ins have none."""
        return self.loader.modules

    @property
    def builtin(self) -> frozenset[str]:
        return self.loader.builtin

    def module(self, name: str) -> Module | None:
        """``THIS_MODULE`` of ``name``: None when built in (or not loaded)."""
        return self.loader.modules.get(name)

    def warn(self, device: str, text: str) -> None:
        """A kernel WARN: logged, and kept as an anomaly for ``check()``."""
        event = self.events.emit("trace", device, f"WARNING: {text}", level="warn")
        self.anomalies.append(Anomaly(event.seq, device, text))

    def check(self) -> list[Violation]:
        return check(self)

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        return self.events.subscribe(callback)

    # -- what a user does --------------------------------------------------------------

    def _op(self, what: str, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except KernelError as exc:
            code = exc.errno or errno.EIO
            self.events.emit(
                ERROR,
                exc.device,
                str(exc.strerror),
                {"ERRNO": errno.errorcode.get(code, str(code)), "OP": what},
                level="err",
            )
            raise

    def modprobe(self, name: str) -> None:
        self._op(f"modprobe {name}", self.loader.modprobe, name)

    def rmmod(self, name: str) -> None:
        self._op(f"rmmod {name}", self.loader.rmmod, name)

    def plug(self, catalog_name: str, port: str | None = None) -> str:
        where = f" {port}" if port else ""
        return self._op(f"plug {catalog_name}{where}", self.usb.plug, catalog_name, port).name

    def unplug(self, name: str) -> None:
        self._op(f"unplug {name}", self.usb.unplug, name)

    def bind(self, driver: str, interface: str) -> None:
        self._op(f"bind {driver} {interface}", self.usb.bind, driver, interface)

    def unbind(self, driver: str, interface: str) -> None:
        self._op(f"unbind {driver} {interface}", self.usb.unbind, driver, interface)

    def open(self, path: str, comm: str = SHELL) -> int:
        """``open(path)`` in the process named ``comm`` (``allocator.task``)."""
        return self._op(f"open {path}", self.files.open, path, comm)

    def close(self, fd: int | str, comm: str | None = None) -> None:
        """Close an fd, or the oldest open file on a node path (of the process ``comm``)."""
        self._op(f"close {fd}", self.files.close, fd, comm)

    def ioctl(self, fd: int, request: str) -> Any:
        return self._op(f"ioctl {request}", self.files.ioctl, fd, request)


def _since_boot() -> Callable[[], float]:
    """Seconds since this simulated kernel booted, like the timestamps dmesg prints."""
    boot = time.monotonic()
    return lambda: time.monotonic() - boot
