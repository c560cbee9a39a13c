"""Kernel reports: a WARN's splat and an oops, printed as the kernel prints them.

A report is a headline and then its context, one log line each, as ``dmesg`` shows them:

    WARNING: CPU: 0 PID: 1000 at kernel/module.c:262 module_assert_mutex+0x20/0x30
    Modules linked in: au0828(+) dvb_core videodev mc
    CPU: 0 PID: 1000 Comm: modprobe Not tainted 6.12.0 #1
    RIP: 0010:module_assert_mutex+0x20/0x30
    Call Trace:
     find_module+0x9/0x20
     media_device_usb_allocate+0x10b/0x170 [mc]
     au0828_usb_probe+0x1bd/0x290 [au0828]
     ...
    ---[ end trace 0000000000000000 ]---

A WARN's headline goes through ``Kernel.warn``, so it is an anomaly ``check()`` reports like
the refcount_t WARNs; an oops's is a ``BUG:`` line, and ``check()`` reports it from
``reports``, where every report is kept whole (``KernelReport``: the function that fired, the
task, the call trace, what caused it) for a caller to query.  Deliberate differences: no
registers or code bytes (the model has none); the oops is logged at ``err`` (``Printk`` has
no alert level); the taint flags count only this reporter's reports; ``Modules linked in``
lists the loaded modules in the reverse of ``/lib/modules``' order (dependents before what
they use), which is close to, but not exactly, newest first.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import NamedTuple

from .callchain import Context, render
from .events import Event, Printk
from .module import Module, ModuleState
from .task import Task

END_TRACE = "---[ end trace 0000000000000000 ]---"
#: ``print_tainted()``'s columns, one per flag; the first is G for a kernel without proprietary modules
TAINT_FLAGS = "GFSRMBUDAWCIOELKXT"


class KernelReport(NamedTuple):
    """One report: ``kind`` is ``warn`` or ``oops``; ``device`` what the model names it after;
    ``text`` its headline (a WARN's without the ``WARNING: `` the log adds); ``function`` the
    one that fired; ``cause`` what the model knows led there; ``seq`` the event sequence
    number of its last line."""

    kind: str
    device: str
    text: str
    function: str
    task: Task
    call_trace: tuple[str, ...]
    cause: str
    seq: int


class Reporter:
    """Prints reports into the kernel log of one simulated kernel."""

    def __init__(
        self,
        printk: Printk,
        warn: Callable[[str, str], None],
        find_module: Callable[[str], Module | None],
        module_names: Callable[[], tuple[str, ...]],
        kernel_version: int,
    ) -> None:
        self._log = printk
        self._warn = warn
        self._find_module = find_module
        self._module_names = module_names
        self.release = f"{kernel_version >> 16}.{(kernel_version >> 8) & 0xFF}.{kernel_version & 0xFF}"
        self._lock = threading.Lock()
        self._taint: set[str] = set()
        self._oopses = 0
        self.reports: list[KernelReport] = []

    def loaded(self, name: str) -> bool:
        """Whether ``name`` is a loaded module (its frames print ``[name]``)."""
        return self._find_module(name) is not None

    def warn(self, device: str, location: str, symbol: str, ctx: Context, cause: str) -> KernelReport:
        """``WARN()`` at ``location`` (``kernel/module.c:262``) in ``symbol``
        (``module_assert_mutex+0x20/0x30``), ``ctx`` the task and the frames below it."""
        trace = tuple(render(f, self.loaded) for f in ctx.frames)
        cpu_line = self._cpu_line(ctx.task)  # the taint as it was before this WARN
        text = f"CPU: 0 PID: {ctx.task.pid} at {location} {symbol}"
        self._warn(device, text)
        with self._lock:
            self._taint.add("W")
        lines = [self._modules_line(), cpu_line]
        if ctx.workqueue:
            lines.append(f"Workqueue: {ctx.workqueue}")
        lines += [f"RIP: 0010:{symbol}", "Call Trace:", *(f" {t}" for t in trace)]
        seq = self._print(lines, self._log.dev_warn)
        function = symbol.split("+", 1)[0]
        report = KernelReport("warn", device, text, function, ctx.task, trace, cause, seq)
        self.reports.append(report)
        return report

    def oops(self, device: str, address: int, symbol: str, ctx: Context, cause: str) -> KernelReport:
        """A page fault the kernel cannot handle, at ``address`` in ``symbol``: the oops that
        kills the task it happened in."""
        trace = tuple(render(f, self.loaded) for f in ctx.frames)
        with self._lock:
            self._oopses += 1
            number = self._oopses
        text = f"BUG: unable to handle kernel paging request at {address:016x}"
        self._log.dev_err("", text)
        cpu_line = self._cpu_line(ctx.task)
        with self._lock:
            self._taint.add("D")
        lines = [
            f"IP: {symbol}",
            f"Oops: 0000 [#{number}] SMP",
            self._modules_line(),
            cpu_line,
            f"RIP: 0010:{symbol}",
            "Call Trace:",
            *(f" {t}" for t in trace),
        ]
        seq = self._print(lines, self._log.dev_err)
        report = KernelReport("oops", device, text, symbol.split("+", 1)[0], ctx.task, trace, cause, seq)
        self.reports.append(report)
        return report

    def _print(self, lines: list[str], printk: Callable[[str, str], Event]) -> int:
        for line in lines:
            printk("", line)
        return printk("", END_TRACE).seq

    def _cpu_line(self, task: Task) -> str:
        with self._lock:
            taint = set(self._taint)
        flags = "".join(f if f in taint else " " for f in TAINT_FLAGS[1:])
        tainted = f"Tainted: G{flags}" if taint else "Not tainted"
        return f"CPU: 0 PID: {task.pid} Comm: {task.comm} {tainted} {self.release} #1"

    def _modules_line(self) -> str:
        """``print_modules()``: each loaded module, ``(+)`` while it loads, ``(-)`` while it goes."""
        names = []
        for name in self._module_names():
            mod = self._find_module(name)
            if mod is not None:
                mark = {ModuleState.COMING: "(+)", ModuleState.GOING: "(-)"}.get(mod.state, "")
                names.append(f"{name}{mark}")
        return "Modules linked in: " + " ".join(reversed(names))
