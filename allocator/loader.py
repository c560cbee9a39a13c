"""``modprobe`` and ``rmmod``: loading with dependencies, unloading with kmod's refusals.

Models kmod's tools and kernel/module/main.c as a user sees them:

* ``modprobe M`` loads M's dependencies first (each dependent takes a reference on what it
  uses, ``ref_module``), runs M's init (for a USB driver module: ``usb_register``, which binds
  every matching unbound interface) and is a no-op for a loaded or built-in module.  Unknown:
  "modprobe: FATAL: Module M not found in directory /lib/modules/<release>" (ENOENT).
* ``rmmod M``: "rmmod: ERROR: Module M is not currently loaded" (ENOENT), "... is builtin."
  (ENOENT), "... is in use by: A B" while modules depend on it, "... is in use" while its
  refcnt > 0 (EBUSY).  Otherwise M goes GOING (``try_module_get`` now fails), its exit runs
  (``usb_deregister`` unbinds all it holds), it drops its dependency references and is freed.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .drivers.au0828 import Au0828Driver
from .drivers.snd_usb_audio import SndUsbAudioDriver
from .drivers.uvcvideo import UvcDriver
from .errors import KernelError
from .events import MODULE, EventBus
from .module import Module, ModuleState, module_put, try_module_get
from .usbcore import UsbDriver

if TYPE_CHECKING:
    from .kernel import Kernel


@dataclass(frozen=True)
class ModuleInfo:
    deps: tuple[str, ...] = ()
    driver: type[UsbDriver] | None = None


#: What /lib/modules holds on the simulated machine.
MODULES: dict[str, ModuleInfo] = {
    "mc": ModuleInfo(),
    "videodev": ModuleInfo(("mc",)),
    "dvb_core": ModuleInfo(("mc",)),
    "snd": ModuleInfo(),
    "au0828": ModuleInfo(("mc", "videodev", "dvb_core"), Au0828Driver),
    "snd_usb_audio": ModuleInfo(("mc", "snd"), SndUsbAudioDriver),
    "uvcvideo": ModuleInfo(("mc", "videodev"), UvcDriver),
}


class ModuleLoader:
    def __init__(self, kernel: Kernel, bus: EventBus, builtin: tuple[str, ...], release: str) -> None:
        self._k = kernel
        self._bus = bus
        self._release = release
        self._lock = threading.RLock()  # module_mutex
        self.modules: dict[str, Module] = {}
        self.drivers: dict[str, UsbDriver] = {}
        self.builtin = self._closure(builtin)

    def _closure(self, names: tuple[str, ...]) -> frozenset[str]:
        out: set[str] = set()
        todo = list(names)
        while todo:
            name = todo.pop()
            if name not in MODULES:
                raise ValueError(f"unknown built-in module {name!r}")
            if name not in out:
                out.add(name)
                todo.extend(MODULES[name].deps)
        return frozenset(out)

    def boot(self) -> None:
        """Built-in drivers register at boot, with no ``struct module`` (owner None)."""
        for name in sorted(self.builtin):
            self._start_driver(name, None)

    def module(self, name: str) -> Module | None:
        return self.modules.get(name)

    def modprobe(self, name: str) -> None:
        if name not in MODULES:
            where = f"/lib/modules/{self._release}"
            raise KernelError(errno.ENOENT, f"modprobe: FATAL: Module {name} not found in directory {where}", name)
        with self._lock:
            if name in self.builtin:
                return
            loaded = self.modules.get(name)
            if loaded is not None:
                if loaded.state is ModuleState.GOING:  # the old one is still unloading
                    raise KernelError(
                        errno.EBUSY, f"modprobe: ERROR: could not insert '{name}': Device or resource busy", name
                    )
                return
            for dep in MODULES[name].deps:
                self.modprobe(dep)
            mod = Module(name, tuple(d for d in MODULES[name].deps if d not in self.builtin), self._k.warn)
            for dep in mod.deps:
                try_module_get(self.modules[dep])
            self.modules[name] = mod
            self._bus.emit(MODULE, name, f"load {name}", {"ACTION": "load", "MODULE": name})
        self._start_driver(name, mod)
        mod.state = ModuleState.LIVE

    def _start_driver(self, name: str, mod: Module | None) -> None:
        cls: Callable[..., UsbDriver] | None = MODULES[name].driver
        if cls is None:
            return
        drv = cls(self._k, mod)
        with self._lock:
            self.drivers[drv.name] = drv
        self._k.usb.register_driver(drv)

    def rmmod(self, name: str) -> None:
        with self._lock:
            if name in self.builtin:
                raise KernelError(errno.ENOENT, f"rmmod: ERROR: Module {name} is builtin.", name)
            mod = self.modules.get(name)
            if mod is None:
                raise KernelError(errno.ENOENT, f"rmmod: ERROR: Module {name} is not currently loaded", name)
            users = [m.name for m in self.modules.values() if name in m.deps]
            if users:
                raise KernelError(errno.EBUSY, f"rmmod: ERROR: Module {name} is in use by: {' '.join(users)}", name)
            with mod._lock:  # delete_module(): only a LIVE module with refcnt 0 goes GOING
                live = mod.state is ModuleState.LIVE
                busy = mod.refcnt > 0
                if live and not busy:
                    mod.state = ModuleState.GOING
            if not live:
                busy_text = f"rmmod: ERROR: could not remove '{name}': Device or resource busy"
                raise KernelError(errno.EBUSY, busy_text, name)
            if busy:
                raise KernelError(errno.EBUSY, f"rmmod: ERROR: Module {name} is in use", name)
            drv = next((d for d in self.drivers.values() if d.module is mod), None)
        if drv is not None:
            self._k.usb.deregister_driver(drv)
        with self._lock:
            if drv is not None:
                self.drivers.pop(drv.name, None)
            for dep in mod.deps:
                module_put(self.modules.get(dep))
            del self.modules[name]
            mod.state = ModuleState.UNLOADED
            self._bus.emit(MODULE, name, f"unload {name}", {"ACTION": "unload", "MODULE": name})
