"""``struct module`` reference counting: ``try_module_get`` / ``module_put``.

Models kernel/module/main.c.  ``refcnt`` is what ``/sys/module/NAME/refcnt`` shows
(``module_refcount()``: the atomic counter less MODULE_REF_BASE).  A built-in driver has no
``struct module``: its ``THIS_MODULE`` is NULL, and include/linux/module.h documents that
``try_module_get(NULL)`` succeeds and ``module_put(NULL)`` does nothing; here that is ``None``.

``try_module_get`` fails once the module is GOING (rmmod has committed to unloading it).
``module_put`` below zero is the kernel's ``WARN_ON(ret < 0)``; a get or put on a module
that has already been freed is a use-after-free in the kernel; here both are reported
through ``warn`` and never corrupt the model.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from enum import Enum


class ModuleState(Enum):
    COMING = "coming"
    LIVE = "live"
    GOING = "going"
    UNLOADED = "unloaded"  # freed: any pointer to it is dangling


class Module:
    """A loaded module, as ``/sys/module/NAME`` describes it."""

    __slots__ = ("_lock", "_warn", "deps", "name", "refcnt", "state")

    def __init__(self, name: str, deps: tuple[str, ...], warn: Callable[[str, str], None]) -> None:
        self.name = name
        self.deps = deps
        self.refcnt = 0
        self.state = ModuleState.COMING
        self._lock = threading.Lock()
        self._warn = warn

    def __repr__(self) -> str:
        return f"<Module {self.name} {self.state.value} refcnt={self.refcnt}>"


def try_module_get(module: Module | None) -> bool:
    """Take a reference unless the module is going away; ``None`` (built-in) always works."""
    if module is None:
        return True
    with module._lock:
        state = module.state
        if state is ModuleState.COMING or state is ModuleState.LIVE:
            module.refcnt += 1
            return True
    if state is ModuleState.UNLOADED:
        module._warn(module.name, f"try_module_get() on freed module {module.name} (use-after-free)")
    return False


def module_put(module: Module | None) -> None:
    """Drop a reference; ``None`` (built-in) does nothing."""
    if module is None:
        return
    with module._lock:
        state = module.state
        underflow = module.refcnt <= 0
        if not underflow:
            module.refcnt -= 1
    if state is ModuleState.UNLOADED:
        module._warn(module.name, f"module_put() on freed module {module.name} (use-after-free)")
    elif underflow:
        module._warn(module.name, f"module_put() underflow on {module.name}: WARN_ON(ret < 0)")
