"""What ``mdtui soak`` drives: the simulated kernel, or a live machine (a real one, or the rig),
behind one interface, and the evidence each gives.

* ``SimMachine``: a default world of the simulated kernel (``mdtui.sources.sim.build``), driven
  through ``Kernel``'s own calls, from any number of threads at once (not through
  ``SimSource.perform``, whose lock would serialise the very races the soak looks for).  Its
  evidence: every WARN (``k.anomalies``), every report (``k.allocator.reports``: a WARN's cause,
  an oops) since the machine was made, and the allocator's invariants (``k.check()``).
  ``race_window_ms`` sleeps in the ``release:before_lock`` hook: the window mainline leaves
  between ``kref_put()`` dropping to zero and the release taking ``media_device_lock``, widened
  as a kernel developer would with an ``msleep()`` there.
* ``LiveMachine``: sysfs writes for bind/unbind (``LiveSource.perform``), real ``open()`` and
  ``ioctl()`` on the nodes, ``rmmod``/``modprobe`` (kmod's tools) and the USB device's
  ``authorized`` attribute for an unplug; inside the rig, whose sysfs has no ``authorized``
  file and whose modules no ``delete_module()`` reaches, those three go to its control socket
  (``$MDTUI_RIG_CONTROL``: the rig's hands on the hardware).  Its evidence: the kernel log read
  from ``/dev/kmsg`` from the moment the soak started (``LOG_PATTERNS``); a log that overran
  while the soak read it is said (``lost``).

* ``RemoteMachine`` (``remote.py``, ``--source ssh:HOST``): a ``LiveMachine`` on the target,
  run by the remote agent (mdtui/remote/agent.py), every call forwarded to it.  So this module
  is one of the agent's (``mdtui.remote.pack``): it imports and runs on Python 3.8 with the
  standard library only, and nothing of the simulated kernel at import (``SimMachine`` takes
  what it needs when it is made).

Errnos: an ioctl on a node whose device is being unregistered may fail with EIO, ENODEV or
ENXIO (``ALLOWED_IOCTL``); an open may also find the node gone (ENOENT).  Anything else is
evidence.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import re
import subprocess
import threading
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from allocator.mc import uapi_layout
from allocator.subsys.v4l2_uapi import VIDIOC_QUERYCAP, V4l2Capability

from ..live.kmsg import KmsgReader
from ..model import SystemSnapshot

if TYPE_CHECKING:
    from allocator.check import Violation

#: what an ioctl may fail with while its device is being unregistered
ALLOWED_IOCTL = frozenset({errno.EIO, errno.ENODEV, errno.ENXIO})
#: what an open may fail with then: those, or the node already gone from /dev
ALLOWED_OPEN = ALLOWED_IOCTL | {errno.ENOENT}

#: kernel log lines that are evidence, by kind; the first pattern that matches names the kind
LOG_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("kasan", re.compile(r"\bKASAN\b")),
    ("refcount_t", re.compile(r"\brefcount_t: ")),
    (
        "lockdep",
        re.compile(
            r"possible (circular|recursive) locking|inconsistent lock state|DEBUG_LOCKS_WARN_ON|"
            r"suspicious RCU usage|bad unlock balance|held lock freed|lockdep|module_assert_mutex|lock_is_held"
        ),
    ),
    ("gpf", re.compile(r"general protection fault")),
    ("oops", re.compile(r"\bOops\b|BUG: unable to handle|Unable to handle kernel")),
    ("bug", re.compile(r"\bBUG: |kernel BUG at")),
    ("warn", re.compile(r"\bWARNING: ")),
)


#: the lines of a report after its headline (``RIP:``, the call trace's frames, ``Oops:``
#: after ``BUG:``...): part of the report the headline already names, never evidence again
SPLAT_BODY = re.compile(
    r"^(\s|RIP:|IP:|Oops:|#PF:|PGD |CPU: \d+ PID: \d+ Comm:|Modules linked in:|Hardware name:|Workqueue:|"
    r"Call Trace:|Code:|RSP:|RAX:|RBX:|RDX:|RBP:|R\d\d:|FS:|CS:|CR2:|DR\d:|<TASK>|</TASK>|Kernel panic)"
)
SPLAT_END = re.compile(r"^---\[ end (trace|Kernel panic)|^={20,}$")
#: how many lines a report may run without its end marker before it counts as over
SPLAT_LINES = 100


def classify(line: str) -> str | None:
    """The kind of evidence a kernel log line is, None when it is none."""
    for kind, pattern in LOG_PATTERNS:
        if pattern.search(line):
            return kind
    return None


class Evidence(NamedTuple):
    """One fact that fails a scenario: ``kind`` (``refcount_t``, ``lockdep``, ``oops``, ``errno``,
    ``state``, ``invariant``...) and its text, as the kernel or the check says it."""

    kind: str
    text: str


def errname(code: int | None) -> str:
    return errno.errorcode.get(code or 0, str(code))


def oserror_text(exc: OSError) -> str:
    """``EBUSY: rmmod: ERROR: Module au0828 is in use``."""
    return f"{errname(exc.errno)}: {exc.strerror or exc}"


def module_name(driver: str) -> str:
    """A driver's module, when sysfs does not say (the kernel writes module names with ``_``)."""
    return driver.replace("-", "_")


def catalog_name(vendor: int, product_id: int) -> str | None:
    """The simulation's catalog entry for a USB device (what the sim and the rig plug back)."""
    from allocator.catalog import CATALOG

    return next((n for n, d in CATALOG.items() if (d.vendor, d.product_id) == (vendor, product_id)), None)


class Machine(ABC):
    """One machine the soak runs on.  Every call that the kernel refuses raises ``OSError``
    with its errno (``KernelError`` is one)."""

    source = ""
    #: the allocator's design that runs: a simulated variant, or the running kernel
    design = ""
    #: what kernel it is, for the header
    kernel = ""
    #: whether lifecycle steps beyond bind/unbind (rmmod, modprobe, unplug, plug) touch real hardware
    real = False

    @abstractmethod
    def snapshot(self) -> SystemSnapshot: ...
    @abstractmethod
    def bind(self, driver: str, interface: str) -> None: ...
    @abstractmethod
    def unbind(self, driver: str, interface: str) -> None: ...
    @abstractmethod
    def rmmod(self, module: str) -> None: ...
    @abstractmethod
    def modprobe(self, module: str) -> None: ...
    @abstractmethod
    def unplug(self, usb: str) -> None: ...
    @abstractmethod
    def plug(self, usb: str, catalog: str | None) -> None: ...
    @abstractmethod
    def open(self, path: str, comm: str) -> int: ...
    @abstractmethod
    def device_info(self, fd: int) -> str:
        """MEDIA_IOC_DEVICE_INFO on ``fd``: the driver it names."""

    @abstractmethod
    def querycap(self, fd: int) -> str:
        """VIDIOC_QUERYCAP on ``fd``: the driver it names."""

    @abstractmethod
    def close(self, fd: int) -> None: ...
    @abstractmethod
    def video_node(self, interface: str) -> str | None:
        """The first ``/dev/videoN`` of a USB interface now, None when it has none."""

    @abstractmethod
    def media_nodes(self) -> list[str]:
        """What ``ls /dev/media*`` prints."""

    @abstractmethod
    def evidence(self) -> list[Evidence]:
        """What the kernel said since the last call (the first call: since the machine was
        made) that fails a soak."""

    def invariants(self) -> list[Evidence]:
        """Invariant violations found now (call it only while nothing else runs)."""
        return []

    def artifact(self, fd: int, exc: OSError) -> str | None:
        """Why an ioctl's failure on ``fd`` is the emulation's, not the kernel's (None: it is
        evidence)."""
        return None

    def notes(self) -> list[str]:
        """What the verdict cannot see (a kernel log that overran)."""
        return []

    def shutdown(self) -> None:  # noqa: B027 (a machine with nothing to release keeps this)
        """Release what the machine holds (the kernel log)."""


# -- the simulated kernel ------------------------------------------------------------------


class SimMachine(Machine):
    source = "sim"

    def __init__(self, variant: str = "mainline", race_window_ms: float = 0.0) -> None:
        from ..sources.sim import build

        self.sim, refused = build(variant=variant)
        if refused:
            raise RuntimeError(f"the default world did not build: {refused}")
        self.k = self.sim.kernel
        self.design = self.k.variant
        self.kernel = f"simulated kernel {self.k.release}"
        self.race_window = race_window_ms / 1000.0
        if race_window_ms > 0:
            self.k.allocator.set_hook("release:before_lock", self._window)
        self._lock = threading.Lock()
        self._anomalies = len(self.k.anomalies)
        self._reports = len(self.k.allocator.reports)
        self._kinds = ("warn", "oops")  # check()'s kinds that evidence() already gives

    def _window(self, _mdi: object) -> None:
        time.sleep(self.race_window)

    def snapshot(self) -> SystemSnapshot:
        return self.sim.snapshot()

    def bind(self, driver: str, interface: str) -> None:
        self.k.bind(driver, interface)

    def unbind(self, driver: str, interface: str) -> None:
        self.k.unbind(driver, interface)

    def rmmod(self, module: str) -> None:
        self.k.rmmod(module)

    def modprobe(self, module: str) -> None:
        self.k.modprobe(module)

    def unplug(self, usb: str) -> None:
        self.k.unplug(usb)

    def plug(self, usb: str, catalog: str | None) -> None:
        if catalog is None:
            raise OSError(errno.ENODEV, f"{usb}: not a device the simulation's catalog has")
        self.k.plug(catalog, usb)

    def open(self, path: str, comm: str) -> int:
        return self.k.open(path, comm)

    def device_info(self, fd: int) -> str:
        return str(self.k.ioctl(fd, "MEDIA_IOC_DEVICE_INFO").driver)

    def querycap(self, fd: int) -> str:
        return str(self.k.ioctl(fd, "VIDIOC_QUERYCAP").get("driver", ""))

    def close(self, fd: int) -> None:
        self.k.close(fd)

    def video_node(self, interface: str) -> str | None:
        below = f"/{interface}/video4linux/video"
        nodes = sorted(p for p, d in list(self.k.devices.nodes.items()) if below in d.devpath)
        return nodes[0] if nodes else None

    def media_nodes(self) -> list[str]:
        return sorted(p for p in list(self.k.devices.nodes) if p.startswith("/dev/media"))

    def evidence(self) -> list[Evidence]:
        """New WARNs (with the cause the report gives, when it has been filed) and oopses."""
        with self._lock:
            anomalies = self.k.anomalies[self._anomalies :]
            reports = self.k.allocator.reports[self._reports :]
            self._anomalies += len(anomalies)
            self._reports += len(reports)
        causes: dict[str, list[str]] = {}
        for r in reports:
            if r.kind == "warn":
                causes.setdefault(r.text, []).append(f"{r.cause}; {r.task.comm}[{r.task.pid}]")
        out = []
        for a in anomalies:
            text = f"WARNING: {a.text}"
            because = causes.get(a.text)
            cause = f" ({because.pop(0)})" if because else ""
            out.append(Evidence(classify(text) or "warn", f"{text}{cause} [{a.device}]"))
        for r in reports:
            if r.kind == "oops":
                out.append(Evidence("oops", f"{r.text} in {r.function}, {r.task.comm}[{r.task.pid}]: {r.cause}"))
        return out

    def invariants(self) -> list[Evidence]:
        return [_violation(v) for v in self.k.check() if v.kind not in self._kinds]


def _violation(v: Violation) -> Evidence:
    return Evidence("invariant", f"check(): {v.kind}: {v.device}: {v.message}")


# -- a live machine ------------------------------------------------------------------------


class Reports:
    """Kernel log lines in, evidence out: one piece per report, its headline (``WARNING:``,
    ``BUG:``, ``refcount_t:``...); the lines of its body (``SPLAT_BODY``, up to its end
    marker) are not counted again.  A report may span two feeds."""

    def __init__(self) -> None:
        self._in = 0  # lines since the open report's headline (0: none open)

    def feed(self, lines: list[str]) -> list[Evidence]:
        out = []
        for line in lines:
            text = _without_device(line)
            if self._in:
                self._in += 1
                if SPLAT_END.search(text) or self._in > SPLAT_LINES:
                    self._in = 0
                    continue
                if SPLAT_BODY.search(text):
                    continue
            kind = classify(line)
            if kind is not None:
                out.append(Evidence(kind, line))
                self._in = 1
        return out


class LiveMachine(Machine):
    """This machine through its system calls.  ``rig`` is the rig's control socket when the
    soak runs inside the rig (``$MDTUI_RIG_CONTROL``), None on real hardware."""

    source = "live"

    def __init__(
        self,
        *,
        rig: str | None = None,
        design: str | None = None,
        kmsg_path: str = "/dev/kmsg",
        sys_root: str = "/sys",
        dev_root: str = "/dev",
    ) -> None:
        from ..live.sysfs import Sysfs
        from ..sources.live import LiveSource

        self.rig = rig
        self.sys = Path(sys_root)
        self.dev = Path(dev_root)
        self.log = KmsgReader(kmsg_path)  # first: the log counts from the start
        self.live = LiveSource(Sysfs(sys_root, dev_root), close_watch=None)
        # the rig's umockdev: an ioctl socket per emulated node; fds opened before it existed
        testbed = os.environ.get("UMOCKDEV_DIR") if rig is not None else None
        self._ioctls = Path(testbed) / "ioctl" if testbed else None
        self._unattached: set[int] = set()
        self.reports = Reports()
        release = _read(Path("/proc/sys/kernel/osrelease")) or "?"
        if rig is not None:
            self.design = design or "unknown (the rig's)"
            self.kernel = "the rig (the simulated kernel behind umockdev)"
        else:
            self.design = "the running kernel's"
            self.kernel = f"Linux {release}"
            self.real = True

    def snapshot(self) -> SystemSnapshot:
        self.live.invalidate()
        return self.live.snapshot()

    def bind(self, driver: str, interface: str) -> None:
        self._sysfs(driver, "bind", interface)

    def unbind(self, driver: str, interface: str) -> None:
        self._sysfs(driver, "unbind", interface)

    def _sysfs(self, driver: str, action: str, interface: str) -> None:
        path = self.sys / "bus" / "usb" / "drivers" / driver / action
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, interface.encode())
        finally:
            os.close(fd)

    def rmmod(self, module: str) -> None:
        if self.rig is not None:
            self._control(f"rmmod {module}")
        else:
            self._tool(["rmmod", module])

    def modprobe(self, module: str) -> None:
        if self.rig is not None:
            self._control(f"modprobe {module}")
        else:
            self._tool(["modprobe", module])

    def unplug(self, usb: str) -> None:
        if self.rig is not None:
            self._control(f"unplug {usb}")
        else:  # usb_deauthorize_device(): every interface unbound and removed, as on a disconnect
            (self.sys / "bus" / "usb" / "devices" / usb / "authorized").write_text("0\n")

    def plug(self, usb: str, catalog: str | None) -> None:
        if self.rig is not None:
            if catalog is None:
                raise OSError(errno.ENODEV, f"{usb}: not a device the rig's catalog has")
            self._control(f"plug {catalog} {usb}")
        else:
            (self.sys / "bus" / "usb" / "devices" / usb / "authorized").write_text("1\n")

    def _control(self, line: str) -> None:
        """One lifecycle line to the rig; its refusal as OSError."""
        from ..rig.control import send

        assert self.rig is not None
        answer = send(self.rig, line)
        if answer != "ok":
            words = answer.split(" ", 3)
            code = int(words[1]) if len(words) > 1 and words[1].isdigit() else errno.EIO
            raise OSError(code, words[3] if len(words) > 3 else answer)

    @staticmethod
    def _tool(argv: list[str]) -> None:
        """kmod's rmmod/modprobe: its refusal as OSError (EBUSY when the module is in use)."""
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        except FileNotFoundError as exc:
            raise OSError(errno.ENOENT, f"{argv[0]}: command not found") from exc
        if done.returncode != 0:
            why = (done.stderr or done.stdout).strip() or f"{argv[0]} exited with {done.returncode}"
            raise OSError(errno.EBUSY if "in use" in why else errno.EIO, why)

    def open(self, path: str, comm: str) -> int:
        attached = self._ioctls is None or (self._ioctls / path.lstrip("/")).exists()
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        if not attached:
            self._unattached.add(fd)
        return fd

    def device_info(self, fd: int) -> str:
        buf = bytearray(ctypes.sizeof(uapi_layout.MediaDeviceInfo))
        fcntl.ioctl(fd, uapi_layout.MEDIA_IOC_DEVICE_INFO, buf)
        return _cstr(uapi_layout.MediaDeviceInfo.from_buffer_copy(buf).driver)

    def querycap(self, fd: int) -> str:
        buf = bytearray(ctypes.sizeof(V4l2Capability))
        fcntl.ioctl(fd, VIDIOC_QUERYCAP, buf)
        return _cstr(V4l2Capability.from_buffer_copy(buf).driver)

    def close(self, fd: int) -> None:
        self._unattached.discard(fd)
        os.close(fd)

    def artifact(self, fd: int, exc: OSError) -> str | None:
        """In the rig, a node appears in /dev a moment before its ioctls are attached
        (mdtui/rig/server.py: ``Rig.sync`` writes /dev, then calls ``attach_ioctl``), and
        umockdev connects an fd to the ioctls only at its open: an fd opened in between gets
        ENOTTY for its whole life, where the kernel's node answers from its first open.
        ``open`` notes the fds opened while the node had no ioctl socket yet."""
        if self.rig is None or exc.errno != errno.ENOTTY or fd not in self._unattached:
            return None
        return "ENOTTY on an fd opened after the rig made its node and before it attached the node's ioctls"

    def video_node(self, interface: str) -> str | None:
        try:
            names = sorted(os.listdir(self.sys / "bus" / "usb" / "devices" / interface / "video4linux"))
        except OSError:
            return None
        videos = [n for n in names if n.startswith("video")]
        return str(self.dev / videos[0]) if videos else None

    def media_nodes(self) -> list[str]:
        try:
            return sorted(str(self.dev / n) for n in os.listdir(self.dev) if n.startswith("media"))
        except OSError:
            return []

    def evidence(self) -> list[Evidence]:
        return self.reports.feed(self.log.messages())

    def notes(self) -> list[str]:
        if self.log.lost:
            return [f"the kernel log overran {self.log.lost} time(s) while the soak read it: records were lost"]
        return []

    def shutdown(self) -> None:
        self.log.close()


#: why a live soak outside the rig needs root
NEEDS_ROOT = (
    "needs root: it writes to /sys/bus/usb/drivers/*/bind and unbind, runs rmmod and "
    "modprobe, and reads the kernel log (/dev/kmsg)"
)


def live_machine(rig: str | None, design: str | None = None) -> LiveMachine:
    """This machine, as ``mdtui soak --source live`` drives it (and the remote agent, for
    ``--source ssh:HOST``): inside the rig (``rig``: its control socket) running ``design``,
    outside it as root.  ``OSError`` says why it cannot be: EPERM not root, or the kernel
    log's errno (the verdict needs the log)."""
    if rig is None and os.geteuid() != 0:
        raise OSError(errno.EPERM, NEEDS_ROOT)
    try:
        return LiveMachine(rig=rig, design=design)
    except OSError as exc:
        why = f"cannot read the kernel log: /dev/kmsg: {exc.strerror} ({errname(exc.errno)}); the verdict needs it"
        raise OSError(exc.errno, why) from None


_DEVICE_PREFIX = re.compile(r"^\S+ \S+: (?=\S)")


def _without_device(line: str) -> str:
    """A log message without its ``dev_printk`` prefix (``usb 1-1: ``), when it has one."""
    return _DEVICE_PREFIX.sub("", line, count=1) if not line.startswith((" ", "RIP:", "IP:")) else line


def _cstr(raw: bytes) -> str:
    return bytes(raw).split(b"\0", 1)[0].decode("utf-8", "replace")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def rig_variant(proc: Path = Path("/proc"), pid: int | None = None) -> str | None:
    """Inside the rig: the allocator design its server runs (its ``--variant``, mainline when
    it has none), found among this process's ancestors; None outside a rig.  A client cannot
    ask the rig for it; the server's command line says it."""
    pid = os.getpid() if pid is None else pid
    for _ in range(64):
        try:
            stat = (proc / str(pid) / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return None
        if ppid <= 1:
            return None
        try:
            argv = (proc / str(ppid) / "cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        words = [w.decode("utf-8", "replace") for w in argv]
        if "mdtui.rig.server" in words:
            server = words[: words.index("--")] if "--" in words else words
            if "--variant" in server and server.index("--variant") + 1 < len(server):
                return server[server.index("--variant") + 1]
            return "mainline"
        pid = ppid
    return None
