"""The kernel's own tests for the Media Device Allocator API, each with a verdict.

``tools/testing/selftests/media_tests/`` gives no verdict: each step is followed by ``ls -l
/dev/media*``, and the instructions end with "run dmesg looking for any use-after-free
errors".  Here each scenario asserts what the kernel must show and collects what it must not:

1. ``media_dev_allocator.sh``: unbind the owner's driver ("Media device should still be
   present!"), unbind the sharer's ("Media device should have been deleted!"), bind both, then
   unbind/bind each in turn; after every step the media nodes of the device, the allocator's
   refcount and the owner module's refcnt are asserted.
2. ``regression_test.txt``: ``media_device_open``-style loops (open + MEDIA_IOC_DEVICE_INFO +
   close) on ``/dev/mediaN``, N+1, N+2 (after an unbind the device may come back under another
   number, which is why the text starts several), and a ``video_device_test``-style loop on the
   owner's video node (open + VIDIOC_QUERYCAP, held a few ms, close: an fd kept across the
   unbind defers au0828's release to its close, outside the driver core's locks), in parallel
   with a bind/unbind loop; every ``CHECK_EVERY`` loops the open loops are parked and the state
   and invariants checked.  Then ``rmmod`` of the owner, refused while another driver shares
   the device (and if it is not, an open of the node: v4's changelog's "kernel paging error"),
   ``rmmod`` of the sharer and of the owner allowed (no media node left), both loaded again,
   then an unplug (no media node left) and a replug.
3. ``media_device_test``: an fd kept across the unbind of both drivers gets EIO from
   MEDIA_IOC_DEVICE_INFO; the node comes back after bind (under another number while the fd
   holds its minor) and answers; the kept fd still gets EIO; after its close all is as before.

Evidence (``machine.Evidence``): the kernel's (WARN, oops, lockdep, refcount_t, KASAN...), an
errno outside those the kernel may return during an unbind, a state other than the expected,
a leaked node, module refcnts that differ after the scenario from before it, an invariant
(simulation).  Each failure names the scenario, the step, the loop and the evidence.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from ..model import MediaDeviceView, SystemSnapshot
from .machine import (
    ALLOWED_IOCTL,
    ALLOWED_OPEN,
    Evidence,
    Machine,
    catalog_name,
    errname,
    module_name,
    oserror_text,
)

ALLOCATOR_SH = "media_dev_allocator.sh"
REGRESSION = "regression_test.txt"
DEVICE_TEST = "media_device_test"
SCENARIOS = (ALLOCATOR_SH, REGRESSION, DEVICE_TEST)
TITLES = {
    ALLOCATOR_SH: "unbind/bind each driver, the state asserted after each step",
    REGRESSION: "open loops in parallel with a bind/unbind loop, then rmmod, unplug",
    DEVICE_TEST: "an fd kept across the unregistration gets EIO, the node comes back",
}

#: media_device_open-style loops: on the device's node and the next two numbers
OPEN_LOOPS = 3
#: the state and the invariants are checked every this many bind/unbind loops (and after the last)
CHECK_EVERY = 10
#: failures kept per scenario (the rest are counted)
KEEP = 50
#: how long a loop thread may take to park or to end before it counts as hung
HANG = 10.0


class CannotRun(Exception):
    """The soak cannot run here (no such device, not shared, no root...): exit status 2."""


# -- results -------------------------------------------------------------------------------


@dataclass
class Failure:
    scenario: str
    step: str
    loop: int | None
    kind: str
    evidence: str
    seq: int = 0

    @property
    def where(self) -> str:
        """``loop 3, bind au0828 1-1:1.0``: the step and the loop it was found in."""
        return f"loop {self.loop}, {self.step}" if self.loop is not None else self.step

    def line(self) -> str:
        return f"{self.where}: {self.evidence}"


@dataclass
class ScenarioResult:
    name: str
    result: str = "pass"  # pass | fail | error (could not run) | skipped
    loops: int = 0
    steps: int = 0
    opens: int = 0
    failures: list[Failure] = field(default_factory=list)
    dropped: int = 0
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    reason: str | None = None  # error/skipped: why

    @property
    def title(self) -> str:
        return TITLES[self.name]

    @property
    def first(self) -> Failure | None:
        return min(self.failures, key=lambda f: f.seq) if self.failures else None

    @property
    def errors(self) -> int:
        return len(self.failures) + self.dropped


@dataclass(frozen=True)
class Driver:
    driver: str  # as /sys/bus/usb/drivers names it
    interface: str  # the first interface it is bound to
    module: str

    def __str__(self) -> str:
        return f"{self.driver} {self.interface}"


@dataclass(frozen=True)
class Target:
    """The shared device the soak runs against, as it was found at the start."""

    usb: str  # BUS-PORT of its USB device: its identity (the node number may change)
    node: str
    model: str
    bus_info: str
    driver: str  # MEDIA_IOC_DEVICE_INFO's driver
    owner: str  # the owner module
    first: Driver  # the owner's driver (media_dev_allocator.sh's $1)
    second: Driver  # the sharer's ($2)
    catalog: str | None  # what the simulation (and the rig) plug back after the unplug

    @property
    def modules(self) -> frozenset[str]:
        return frozenset({self.first.module, self.second.module})

    def describe(self) -> str:
        return (
            f"{self.node} {self.model} ({self.bus_info}, USB {self.usb}), shared by "
            f"{self.first} (owner: {self.owner}) and {self.second}"
        )

    def as_json(self) -> dict[str, object]:
        return {
            "node": self.node,
            "usb_device": self.usb,
            "model": self.model,
            "bus_info": self.bus_info,
            "driver": self.driver,
            "owner": self.owner,
            "drivers": [
                {"driver": d.driver, "interface": d.interface, "module": d.module} for d in (self.first, self.second)
            ],
        }


def find_target(snap: SystemSnapshot, spec: str | None) -> Target:
    """The device ``spec`` names (as ``mdtui dump --device`` does), or the first shared one;
    it must be shared by two drivers.  ``CannotRun`` says why not."""
    from ..selection import Ambiguous, NoSuchDevice, describe, select

    if spec is not None:
        try:
            dev = select(snap, spec)
        except NoSuchDevice as exc:
            raise CannotRun(str(exc)) from None
        except Ambiguous as exc:
            names = "; ".join(describe(d) for d in exc.candidates)
            raise CannotRun(f"{exc}; name one of them: {names}") from None
    else:
        shared = [d for d in snap.media_devices if d.shared and d.devnode and d.usb_device]
        if not shared:
            raise CannotRun(
                "no media device here is shared by two drivers (allocated through the Media Device "
                "Allocator API, e.g. a Hauppauge HVR-950Q): name one with --device"
            )
        dev = shared[0]
    name = dev.devnode or dev.key
    if dev.unread is not None:
        raise CannotRun(f"{name} cannot be read: {dev.unread.reason}")
    usb = next((u for u in snap.usb_devices if u.name == dev.usb_device), None)
    if dev.devnode is None:
        raise CannotRun(f"{name} is not registered (no /dev/mediaN): the allocator's tests need one that is")
    if usb is None:
        raise CannotRun(f"{name} is not on a USB device: the Media Device Allocator API shares USB devices' only")
    if not dev.shared:
        raise CannotRun(
            f"{name} ({dev.info.driver}) is its driver's alone, not allocated through the Media Device "
            "Allocator API: the allocator's tests need a device two drivers share"
        )
    modules = {b.driver: b.module for b in dev.bound or () if b.module}
    drivers: list[Driver] = []
    for intf in usb.interfaces:
        if intf.driver and all(d.driver != intf.driver for d in drivers):
            drivers.append(Driver(intf.driver, intf.name, modules.get(intf.driver) or module_name(intf.driver)))
    owner = dev.owner or module_name(dev.info.driver)
    if len(drivers) < 2:
        who = ", ".join(str(d) for d in drivers) or "no driver"
        raise CannotRun(f"{name} is driven by {who} alone: the allocator's tests need a device two drivers share")
    first = next((d for d in drivers if d.module == owner), drivers[0])
    second = next(d for d in drivers if d is not first)
    return Target(
        usb=usb.name,
        node=dev.devnode,
        model=dev.info.model,
        bus_info=dev.info.bus_info,
        driver=dev.info.driver,
        owner=owner,
        first=first,
        second=second,
        catalog=catalog_name(usb.vendor, usb.product_id),
    )


class State(NamedTuple):
    """The target as one snapshot shows it."""

    nodes: tuple[str, ...]  # its registered /dev/mediaN
    held: tuple[MediaDeviceView, ...]  # every media device of its USB device (registered or not)
    refcount: int | None
    owner_refcnt: int | None
    refcnts: dict[str, int | None]  # its drivers' modules and the modules they use
    stale: tuple[str, ...]  # /dev/media* with no registered media device behind it


# -- the run -------------------------------------------------------------------------------


class Progress:
    """What the soak reports as it goes (``mdtui.soak.progress`` draws it on a terminal)."""

    def start(self, scenario: str, total: int | None) -> None: ...
    def update(self, scenario: str, done: int, errors: int) -> None: ...
    def finish(self, scenario: str, result: ScenarioResult) -> None: ...
    def stop(self) -> None: ...


@dataclass
class Options:
    device: str | None = None
    loops: int | None = 200  # regression_test.txt's bind/unbind loops; None: until ``duration``
    duration: float | None = None  # seconds for those loops; None: until ``loops``
    #: think time before each bind/unbind step, up to this many seconds (the shell's fork+exec
    #: between two echos; on the simulation it is what lets a close land between two steps)
    jitter: float = 0.001
    hold: float = 0.005  # the video loop keeps its fd up to this long
    pause: float = 0.0005  # between two iterations of an open loop
    seed: int | None = None


class Soak:
    """Runs the scenarios.  ``machines`` gives the machine of each scenario: a fresh one each
    time for the simulation (a failure does not leak into the next scenario), the same one
    for a live machine (each scenario leaves the device as it found it)."""

    def __init__(self, machines: Callable[[], Machine], options: Options, progress: Progress | None = None) -> None:
        self.machines = machines
        self.options = options
        self.progress = progress or Progress()
        self.rng = random.Random(options.seed)
        self.seq = itertools.count(1)
        self.target: Target | None = None
        self.notes: list[str] = []

    def find(self, machine: Machine) -> Target:
        target = find_target(machine.snapshot(), self.options.device)
        if self.target is None:
            self.target = target
        return target

    def run(self, first: Machine) -> list[ScenarioResult]:
        """Every scenario, ``first`` (the machine the target was found on) running the first;
        their results, in order."""
        results = []
        machine: Machine | None = first
        for name in SCENARIOS:
            if machine is None:
                machine = self.machines()
            result = Run(self, machine, name).run()
            if machine.source == "sim":
                result.notes += machine.notes()
                machine.shutdown()
                machine = None
            results.append(result)
        if first.source != "sim":
            self.notes += first.notes()
        return results


class Run:
    """One scenario on one machine."""

    def __init__(self, soak: Soak, machine: Machine, name: str) -> None:
        self.soak = soak
        self.m = machine
        self.name = name
        self.result = ScenarioResult(name)
        self.lock = threading.Lock()
        self._seen: set[str] = set()  # invariant texts already reported
        self.loop: int | None = None  # the bind/unbind loop being run, for evidence found by the main thread
        self.sharer_ref = 1  # what the sharer adds to the owner module's refcnt (0 when the start showed none)

    # -- recording ---------------------------------------------------------------------

    def fail(self, step: str, evidence: Evidence, loop: int | None = None) -> None:
        with self.lock:
            if len(self.result.failures) >= KEEP:
                self.result.dropped += 1
                return
            seq = next(self.soak.seq)
            self.result.failures.append(Failure(self.name, step, loop, evidence.kind, evidence.text, seq))

    def drain(self, step: str, loop: int | None = None) -> None:
        """What the kernel said since the last look, found at ``step``."""
        for ev in self.m.evidence():
            self.fail(step, ev, loop)

    def invariants(self, step: str, loop: int | None = None) -> None:
        for ev in self.m.invariants():
            if ev.text not in self._seen:
                self._seen.add(ev.text)
                self.fail(step, ev, loop)

    def crash(self, step: str, exc: BaseException, loop: int | None = None) -> None:
        """Something other than a refusal came out of the kernel (or out of reading it)."""
        self.fail(step, Evidence("crash", f"{type(exc).__name__}: {exc}"), loop)

    # -- the machine -------------------------------------------------------------------

    def state(self) -> State:
        t = self.target
        snap = self.m.snapshot()
        held = tuple(d for d in snap.media_devices if d.usb_device == t.usb)
        nodes = tuple(sorted(d.devnode for d in held if d.devnode))
        refcount = held[0].refcount if len(held) == 1 else (None if held else 0)
        mods = {m.name: m for m in snap.modules}
        ours = t.modules | {t.owner}
        refcnts = {m.name: m.refcnt for m in snap.modules if m.name in ours or set(m.used_by) & ours}
        owner = mods.get(t.owner)
        registered = {d.devnode for d in snap.media_devices if d.devnode}
        stale = tuple(n for n in self.m.media_nodes() if n not in registered)
        return State(nodes, held, refcount, owner.refcnt if owner else None, refcnts, stale)

    def expect(
        self,
        step: str,
        *,
        present: bool,
        refcount: int | None = None,
        owner_refcnt: int | None = None,
        why: str = "",
        loop: int | None = None,
    ) -> State | None:
        """Read the state and fail ``step`` for each way it differs from the expected: the
        device's node there (``present``) or gone, with nothing left of it; its refcount; the
        owner module's refcnt; no /dev/media* without a device."""
        self.result.steps += 1
        t = self.target
        try:
            st = self.state()
        except Exception as exc:
            self.crash(f"{step}: reading the state", exc, loop)
            return None
        said = f' ("{why}")' if why else ""
        if present and len(st.nodes) != 1:
            text = (
                f"no media node of {t.usb} after it{said}"
                if not st.nodes
                else f"{len(st.nodes)} media nodes of {t.usb}: {', '.join(st.nodes)}"
            )
            self.fail(step, Evidence("state", text), loop)
        if not present and st.nodes:
            self.fail(
                step,
                Evidence("leak", f"{', '.join(st.nodes)} still registered with every driver of {t.usb} gone{said}"),
                loop,
            )
        elif not present and st.held:
            counts = ", ".join(f"refcount {d.refcount}" for d in st.held)
            self.fail(
                step,
                Evidence("leak", f"a media device of {t.usb} is still held ({counts}) with every driver gone"),
                loop,
            )
        if present and refcount is not None and st.nodes and st.refcount != refcount:
            self.fail(step, Evidence("state", f"refcount {st.refcount}, expected {refcount}"), loop)
        if owner_refcnt is not None and st.owner_refcnt != owner_refcnt:
            self.fail(
                step,
                Evidence("state", f"/sys/module/{t.owner}/refcnt {st.owner_refcnt}, expected {owner_refcnt}"),
                loop,
            )
        for node in st.stale:
            self.fail(step, Evidence("leak", f"{node} exists with no registered media device behind it"), loop)
        return st

    @property
    def target(self) -> Target:
        assert self.soak.target is not None
        return self.soak.target

    def act(
        self, step: str, fn: Callable[[], object], loop: int | None = None, *, expect_errno: int | None = None
    ) -> OSError | None:
        """Run one lifecycle step; a refusal fails it (unless it is ``expect_errno``, which is
        returned), and so does whatever the kernel said meanwhile.  The refusal, or None."""
        refused: OSError | None = None
        try:
            fn()
        except OSError as exc:
            refused = exc
            if expect_errno is None or exc.errno != expect_errno:
                self.fail(step, Evidence("refused", f"refused: {oserror_text(exc)}"), loop)
        except Exception as exc:
            self.crash(step, exc, loop)
        self.drain(step, loop)
        return refused

    def baseline(self) -> tuple[int, dict[str, int | None]] | None:
        """The start: the device there, shared (refcount 2); the owner module's refcnt without
        the sharer's reference, and the modules' refcnts; None when the device is not there
        at all (the scenario cannot run).  The sharer must hold a reference on the owner
        module (what keeps ``rmmod`` of the owner from succeeding under it): a refcnt below 1
        fails the start, once, and the later steps expect what the start showed, so the
        one fact is not reported again at every step."""
        t = self.target
        st = self.expect("start", present=True, refcount=2)
        if st is None or not st.nodes:
            return None
        refcnt = st.owner_refcnt or 0
        if refcnt < 1:
            text = (
                f"/sys/module/{t.owner}/refcnt {st.owner_refcnt} while {t.second.driver} shares {st.nodes[0]}: "
                f"the sharer holds no reference on the owner module (expected >= 1)"
            )
            self.fail("start", Evidence("state", text))
            self.sharer_ref = 0
        return refcnt - self.sharer_ref, st.refcnts

    def same_refcnts(self, step: str, before: dict[str, int | None]) -> None:
        """Module refcnts after the scenario against before it."""
        try:
            after = self.state().refcnts
        except Exception as exc:
            self.crash(step, exc)
            return
        for name in sorted(set(before) | set(after)):
            if before.get(name) != after.get(name):
                text = f"/sys/module/{name}/refcnt {before.get(name)} before, {after.get(name)} after"
                self.fail(step, Evidence("module", text))

    def restore(self) -> None:
        """Put the device back as the scenario found it (both drivers bound, their modules
        loaded, plugged), when a failure left it otherwise: a live machine goes on to the
        next scenario on it.  What the kernel says meanwhile is still this scenario's."""
        t = self.target
        try:
            snap = self.m.snapshot()
            if not any(u.name == t.usb for u in snap.usb_devices):
                self.m.plug(t.usb, t.catalog)
                snap = self.m.snapshot()
            loaded = {m.name for m in snap.modules}
            for mod in sorted(t.modules - loaded):
                self.m.modprobe(mod)
            usb = next(u for u in self.m.snapshot().usb_devices if u.name == t.usb)
            bound = {i.name: i.driver for i in usb.interfaces}
            for drv in (t.first, t.second):
                if bound.get(drv.interface) != drv.driver:
                    self.m.bind(drv.driver, drv.interface)
        except Exception as exc:
            self.result.notes.append(f"could not put {t.usb} back as it was: {type(exc).__name__}: {exc}")
        self.drain("putting the device back")

    # -- the scenarios -----------------------------------------------------------------

    def run(self) -> ScenarioResult:
        started = time.monotonic()
        self.soak.progress.start(self.name, self.total())
        try:
            if self.m.source == "sim" or self.soak.target is None:
                self.soak.find(self.m)
            self.m.evidence()  # the log before the scenario is not its
            {ALLOCATOR_SH: self.allocator_sh, REGRESSION: self.regression, DEVICE_TEST: self.device_test}[self.name]()
        except CannotRun as exc:
            self.result.result, self.result.reason = "error", str(exc)
        except Exception as exc:  # a bug of ours or a kernel gone mad: a failure with the evidence
            self.crash("the scenario", exc, self.loop)
        finally:
            if self.m.source != "sim" and self.soak.target is not None:
                self.restore()
        self.result.seconds = time.monotonic() - started
        if self.result.result == "pass" and self.result.failures:
            self.result.result = "fail"
        self.soak.progress.finish(self.name, self.result)
        return self.result

    def total(self) -> int | None:
        if self.name == REGRESSION:
            return self.soak.options.loops
        return 1

    def step(self, op: str, drv: Driver) -> tuple[str, Callable[[], None]]:
        fn = self.m.bind if op == "bind" else self.m.unbind
        return f"{op} {drv}", lambda: fn(drv.driver, drv.interface)

    def allocator_sh(self) -> None:
        """tools/testing/selftests/media_tests/media_dev_allocator.sh, asserted."""
        t = self.target
        base = self.baseline()
        if base is None:
            raise CannotRun(f"no media node of {t.usb} at the start")
        owner, before = base
        a, b = t.first, t.second
        steps = (
            ("unbind", a, True, 1, owner + self.sharer_ref, "Media device should still be present!"),
            ("unbind", b, False, None, owner, "Media device should have been deleted!"),
            ("bind", a, True, 1, owner, ""),
            ("bind", b, True, 2, owner + self.sharer_ref, ""),
            ("unbind", a, True, 1, owner + self.sharer_ref, ""),
            ("bind", a, True, 2, owner + self.sharer_ref, ""),
            ("unbind", b, True, 1, owner, ""),
            ("bind", b, True, 2, owner + self.sharer_ref, ""),
        )
        for op, drv, present, refcount, refcnt, why in steps:
            name, fn = self.step(op, drv)
            self.act(name, fn)
            self.invariants(name)
            self.expect(name, present=present, refcount=refcount, owner_refcnt=refcnt, why=why)
        self.result.loops = 1
        self.same_refcnts("end", before)

    def device_test(self) -> None:
        """media_device_test: an fd kept across the unregistration."""
        t = self.target
        base = self.baseline()
        if base is None:
            raise CannotRun(f"no media node of {t.usb} at the start")
        owner, before = base
        node = self.state().nodes[0]
        try:
            kept = self.m.open(node, "media_device_test")
        except OSError as exc:
            self.fail(f"open {node}", Evidence("errno", f"open {node}: {oserror_text(exc)}"))
            return
        try:
            self.info(kept, f"MEDIA_IOC_DEVICE_INFO on the kept {node}", t.driver)
            for op, drv, present in (("unbind", t.first, True), ("unbind", t.second, False)):
                name, fn = self.step(op, drv)
                self.act(name, fn)
                self.invariants(name)
                self.expect(name, present=present)
                if present:
                    self.info(kept, f"{name}: MEDIA_IOC_DEVICE_INFO on the kept {node}", t.driver)
            for n in range(1, 6):  # media_device_test keeps asking
                self.gone(kept, f"MEDIA_IOC_DEVICE_INFO #{n} on {node} kept across the unregistration")
            for op, drv in (("bind", t.first), ("bind", t.second)):
                name, fn = self.step(op, drv)
                self.act(name, fn)
                self.invariants(name)
            st = self.expect("bind both again", present=True, refcount=2)
            if st is not None and st.nodes:
                fresh_node = st.nodes[0]
                if fresh_node != node:
                    self.result.notes.append(
                        f"the device came back as {fresh_node}: the kept fd still holds {node}'s minor"
                    )
                try:
                    fresh = self.m.open(fresh_node, "media_device_test")
                except OSError as exc:
                    self.fail(f"open {fresh_node}", Evidence("errno", f"open {fresh_node}: {oserror_text(exc)}"))
                else:
                    try:
                        self.info(fresh, f"MEDIA_IOC_DEVICE_INFO on the new {fresh_node}", t.driver)
                    finally:
                        self.m.close(fresh)
            self.gone(kept, f"MEDIA_IOC_DEVICE_INFO on the kept {node} after the device came back")
        finally:
            self.act(f"close the kept {node}", lambda: self.m.close(kept))
        self.invariants("close")
        self.expect(f"close the kept {node}", present=True, refcount=2, owner_refcnt=owner + self.sharer_ref)
        self.result.loops = 1
        self.same_refcnts("end", before)

    def info(self, fd: int, step: str, driver: str) -> None:
        """DEVICE_INFO must answer, naming ``driver``."""
        try:
            got = self.m.device_info(fd)
        except OSError as exc:
            self.fail(step, Evidence("errno", f"{oserror_text(exc)} (the device is registered: expected an answer)"))
        else:
            if got != driver:
                self.fail(step, Evidence("state", f"driver {got!r}, expected {driver!r}"))
        self.drain(step)

    def gone(self, fd: int, step: str) -> None:
        """DEVICE_INFO on an fd whose device was unregistered: EIO (``media_ioctl()``)."""
        try:
            got = self.m.device_info(fd)
        except OSError as exc:
            if exc.errno not in ALLOWED_IOCTL:
                self.fail(step, Evidence("errno", f"{oserror_text(exc)}, expected EIO"))
            elif exc.errno != errno.EIO:
                self.result.notes.append(f"{step}: {errname(exc.errno)} (the kernel's media_ioctl() says EIO)")
        else:
            self.fail(
                step, Evidence("state", f"answered (driver {got!r}) for a device that is unregistered: expected EIO")
            )
        self.drain(step)

    # -- regression_test.txt -----------------------------------------------------------

    def regression(self) -> None:
        t = self.target
        o = self.soak.options
        base = self.baseline()
        if base is None:
            raise CannotRun(f"no media node of {t.usb} at the start")
        owner, before = base
        node = self.state().nodes[0]
        number = int(node.rsplit("media", 1)[1]) if node.rsplit("media", 1)[-1].isdigit() else 0
        loops = Loops(self, [f"/dev/media{number + i}" for i in range(OPEN_LOOPS)])
        loops.start()
        started = time.monotonic()
        earlier = len(self.result.failures)  # found at the start: the loop stops at its own first
        try:
            loop = 0
            while (o.loops is None or loop < o.loops) and (
                o.duration is None or time.monotonic() - started < o.duration
            ):
                loop += 1
                self.loop = loop
                for op, drv in (("unbind", t.first), ("unbind", t.second), ("bind", t.first), ("bind", t.second)):
                    if o.jitter:
                        time.sleep(self.soak.rng.uniform(0, o.jitter))
                    name, fn = self.step(op, drv)
                    self.act(name, fn, loop)
                self.result.loops = loop
                last = (o.loops is not None and loop >= o.loops) or (
                    o.duration is not None and time.monotonic() - started >= o.duration
                )
                failed = len(self.result.failures) > earlier
                if loop % CHECK_EVERY == 0 or last or failed:
                    if not loops.park(f"after loop {loop}", loop):
                        break
                    try:
                        self.invariants("after the loop", loop)
                        self.expect(
                            "after the loop", present=True, refcount=2, owner_refcnt=owner + self.sharer_ref, loop=loop
                        )
                    finally:
                        loops.resume()
                self.soak.progress.update(self.name, loop, self.result.errors)
                if len(self.result.failures) > earlier:
                    break  # the first evidence is what the soak is for; the rest would follow from it
        finally:
            loops.stop()
            self.loop = None
        self.result.opens = loops.opens
        self.drain("open loops")
        self.result.notes.append(
            f"{loops.opens} open+DEVICE_INFO+close on {', '.join(loops.paths)}; "
            f"{loops.video_opens} open+QUERYCAP+close on the video node"
        )
        for why, n in sorted(loops.artifacts.items()):
            self.result.notes.append(f"not evidence, {n} time(s): {why}")
        self.rmmod_and_unplug(owner)
        self.same_refcnts("end", before)

    def rmmod_and_unplug(self, owner: int) -> None:
        t = self.target
        a, b = t.first, t.second
        node = (self.state().nodes or (t.node,))[0]
        refused = self.act(f"rmmod {a.module} (shared)", lambda: self.m.rmmod(a.module), expect_errno=errno.EBUSY)
        if refused is None:
            text = (
                f"rmmod {a.module} succeeded while {b.driver} shares {node} "
                f"(expected EBUSY: Module {a.module} is in use)"
            )
            self.fail(f"rmmod {a.module} (shared)", Evidence("state", text))
            self.probe(node, f"open {node} after rmmod {a.module}")
            self.act(f"modprobe {a.module}", lambda: self.m.modprobe(a.module))
        self.invariants(f"rmmod {a.module} (shared)")
        refused = self.act(
            f"rmmod {b.module}", lambda: self.m.rmmod(b.module), expect_errno=errno.EBUSY if self.m.real else None
        )
        if refused is not None:  # a real machine: something else holds it (a sound server)
            self.result.notes.append(
                f"rmmod {b.module} refused ({oserror_text(refused)}): something else uses it; rmmod steps skipped"
            )
        else:
            self.invariants(f"rmmod {b.module}")
            self.expect(f"rmmod {b.module}", present=True, refcount=1, owner_refcnt=owner)
            self.act(f"rmmod {a.module}", lambda: self.m.rmmod(a.module))
            self.invariants(f"rmmod {a.module}")
            self.expect(f"rmmod {a.module}", present=False)
            for mod in (a.module, b.module):
                self.act(f"modprobe {mod}", lambda mod=mod: self.m.modprobe(mod))
            self.invariants("modprobe")
            self.expect(
                f"modprobe {a.module} {b.module}", present=True, refcount=2, owner_refcnt=owner + self.sharer_ref
            )
        self.act(f"unplug {t.usb}", lambda: self.m.unplug(t.usb))
        self.invariants(f"unplug {t.usb}")
        self.expect(f"unplug {t.usb}", present=False, owner_refcnt=owner)
        self.act(f"plug {t.usb}", lambda: self.m.plug(t.usb, t.catalog))
        self.invariants(f"plug {t.usb}")
        self.expect(f"plug {t.usb}", present=True, refcount=2, owner_refcnt=owner + self.sharer_ref)

    def probe(self, node: str, step: str) -> None:
        """One media_device_open: open, DEVICE_INFO, close; each must work."""
        try:
            fd = self.m.open(node, "media_device_open")
        except OSError as exc:
            self.fail(step, Evidence("errno", f"open {node}: {oserror_text(exc)}"))
        except Exception as exc:
            self.crash(step, exc)
        else:
            try:
                self.info(fd, step, self.target.driver)
            finally:
                with contextlib.suppress(OSError):
                    self.m.close(fd)
        self.drain(step)


class Loops:
    """regression_test.txt's open loops and a video_device_test loop, on threads, which the
    bind/unbind loop can park (between two iterations, holding no fd) to check the state."""

    def __init__(self, run: Run, paths: list[str]) -> None:
        self.run = run
        self.m = run.m
        self.paths = paths
        self.options = run.soak.options
        self.stopping = threading.Event()
        self.cond = threading.Condition()
        self.paused = False
        self.parked = 0
        self.threads: list[threading.Thread] = []
        self.active = 0
        self.opens = 0
        self.video_opens = 0
        self.artifacts: dict[str, int] = {}  # the emulation's failures, not the kernel's: noted
        self.rng = random.Random(run.soak.rng.random())

    def start(self) -> None:
        targets: list[Callable[[], None]] = [lambda i=i, p=p: self.open_loop(i, p) for i, p in enumerate(self.paths)]
        targets.append(self.video_loop)
        self.active = len(targets)
        for n, target in enumerate(targets):
            thread = threading.Thread(target=self._guard, args=(target,), name=f"soak-loop-{n}", daemon=True)
            self.threads.append(thread)
            thread.start()

    def _guard(self, target: Callable[[], None]) -> None:
        try:
            target()
        finally:
            with self.cond:
                self.active -= 1
                self.cond.notify_all()

    def checkpoint(self) -> None:
        """Called by each loop before an iteration: waits while parked."""
        with self.cond:
            if not self.paused:
                return
            self.parked += 1
            self.cond.notify_all()
            while self.paused and not self.stopping.is_set():
                self.cond.wait(0.5)
            self.parked -= 1

    def park(self, step: str, loop: int) -> bool:
        """Stop every loop between two iterations; False (a failure) when one hangs."""
        with self.cond:
            self.paused = True
            ok = self.cond.wait_for(lambda: self.parked >= self.active, HANG)
        if not ok:
            self.run.fail(
                step,
                Evidence(
                    "hang", f"{self.active - self.parked} loop(s) did not come back from the kernel within {HANG:.0f} s"
                ),
                loop,
            )
        return ok

    def resume(self) -> None:
        with self.cond:
            self.paused = False
            self.cond.notify_all()

    def stop(self) -> None:
        self.stopping.set()
        self.resume()
        deadline = time.monotonic() + HANG
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        hung = [t.name for t in self.threads if t.is_alive()]
        if hung:
            self.run.fail(
                "stopping the loops", Evidence("hang", f"{len(hung)} loop(s) still in the kernel after {HANG:.0f} s")
            )

    def _iterations(self) -> Iterator[int]:
        for n in itertools.count(1):
            if self.stopping.is_set():
                return
            self.checkpoint()
            if self.stopping.is_set():
                return
            yield n

    def open_loop(self, i: int, path: str) -> None:
        """open_loop_test.sh: media_device_open, again and again."""
        self._probe_loop(f"open loop {i} ({path})", lambda: path, f"open_loop{i}", "MEDIA_IOC_DEVICE_INFO", 0.0)

    def video_loop(self) -> None:
        """video_device_test: open the owner's video node, VIDIOC_QUERYCAP, keep it a moment."""
        t = self.run.target

        def path() -> str | None:
            return self.m.video_node(t.first.interface) or self.m.video_node(t.second.interface)

        self._probe_loop("video loop", path, "video_test", "VIDIOC_QUERYCAP", self.options.hold)

    def _probe_loop(self, step: str, path_of: Callable[[], str | None], comm: str, request: str, hold: float) -> None:
        """Open a node, ask it ``request``, keep it up to ``hold`` seconds, close: every loop,
        each errno the kernel may not give during an unbind a failure."""
        ask = self.m.device_info if request == "MEDIA_IOC_DEVICE_INFO" else self.m.querycap
        for _n in self._iterations():
            loop = self.run.loop
            path = path_of()
            if path is None:
                time.sleep(self.options.pause)
                continue
            try:
                fd = self.m.open(path, comm)
            except OSError as exc:
                if exc.errno not in ALLOWED_OPEN:
                    self.run.fail(step, Evidence("errno", f"open {path}: {oserror_text(exc)}"), loop)
                time.sleep(self.options.pause)
                continue
            except Exception as exc:
                self.run.crash(step, exc, loop)
                time.sleep(self.options.pause)
                continue
            try:
                ask(fd)
            except OSError as exc:
                if exc.errno not in ALLOWED_IOCTL and not self.emulated(fd, exc):
                    self.run.fail(step, Evidence("errno", f"{request} on {path}: {oserror_text(exc)}"), loop)
            except Exception as exc:
                self.run.crash(step, exc, loop)
            if hold:
                time.sleep(self.rng.uniform(0, hold))
            self._close(fd, step, loop)
            with self.cond:
                if request == "MEDIA_IOC_DEVICE_INFO":
                    self.opens += 1
                else:
                    self.video_opens += 1
            if not hold:
                time.sleep(self.options.pause)

    def emulated(self, fd: int, exc: OSError) -> bool:
        """Whether the failure is the emulation's (the rig's), counted in ``artifacts``."""
        why = self.m.artifact(fd, exc)
        if why is None:
            return False
        with self.cond:
            self.artifacts[why] = self.artifacts.get(why, 0) + 1
        return True

    def _close(self, fd: int, step: str, loop: int | None) -> None:
        try:
            self.m.close(fd)
        except OSError as exc:
            self.run.fail(step, Evidence("errno", f"close: {oserror_text(exc)}"), loop)
        except Exception as exc:
            self.run.crash(step, exc, loop)
