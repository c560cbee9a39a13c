"""Test doubles: stand-ins for what the live path reads, for tests and benchmarks without
the real thing.  An ioctl seam answered by the simulated kernel's media core in the uapi's
bytes, a uevent monitor fed by hand (a pipe makes its fd readable), dynamic debug's control
file, and a file-system seam that fails the way a live sysfs tree does."""

from __future__ import annotations

import builtins
import contextlib
import ctypes
import dataclasses
import errno
import io
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

from allocator import Kernel
from allocator.mc import uapi_layout
from allocator.mc.ioctl import MediaSource, media_ioctl
from mdtui.live.kmsg import ALLOCATOR_FILE
from mdtui.live.openers import SYSCALLS, Calls
from mdtui.live.sysfs import MAX_ATTRIBUTE, Fs

if TYPE_CHECKING:
    from mdtui.sources.live import LiveSource


class FakeIoctl:
    """An ioctl seam that answers for the files in ``devices`` (path -> device), whatever
    file descriptor they were opened as; writes to user pointers go through
    ``ctypes.memmove``, like the kernel's copy_to_user."""

    def __init__(self, devices: dict[str, MediaSource] | None = None) -> None:
        self.devices = devices if devices is not None else {}
        self.calls: dict[str, int] = {}

    def follow(self, k: Kernel, root: Path) -> None:
        """Answer for the media nodes ``k`` has registered, as ``write_tree(k, root)`` lays
        them out under ``root``."""
        self.devices.clear()
        self.devices.update({str(root / node.lstrip("/")): mdev for node, mdev in k.view.media_nodes().items()})

    def __call__(self, fd: int, request: int, buf: object) -> object:
        path = os.readlink(f"/proc/self/fd/{fd}")
        self.calls[path] = self.calls.get(path, 0) + 1
        dev = self.devices.get(path)
        if dev is None:
            raise OSError(errno.ENOTTY, "Inappropriate ioctl for device")
        view = memoryview(buf).cast("B")  # type: ignore[arg-type]
        reply = media_ioctl(dev, request, bytes(view))
        for ptr, data in reply.writes:
            ctypes.memmove(ptr, data, len(data))
        if reply.errno:
            raise OSError(reply.errno, f"{uapi_layout.REQUESTS.get(request, hex(request))}: errno {reply.errno}")
        if reply.arg is not None:
            view[: len(reply.arg)] = reply.arg
        return 0


class WrittenMachine:
    """The simulated kernel ``k`` as the live source reads a machine: a sysfs tree written
    under a temporary ``root`` (``write_tree``), an ioctl seam answering for its media nodes,
    and a uevent monitor fed by hand; ``sync()`` after each change to ``k``."""

    def __init__(self, k: Kernel) -> None:
        import tempfile

        self.kernel = k
        self.root = Path(tempfile.mkdtemp(prefix="mdtui-written-"))
        self.seam = FakeIoctl()
        self.feed = PipeMonitor()
        self.sync()

    def sync(self) -> None:
        from mdtui.rig.tree import write_tree

        write_tree(self.kernel, self.root)
        self.seam.follow(self.kernel, self.root)

    def source(self, **options: object) -> LiveSource:
        """A live source reading it (``options`` for ``LiveSource``)."""
        from mdtui.live.sysfs import Sysfs
        from mdtui.sources.live import LiveSource

        return LiveSource(
            Sysfs(self.root / "sys", self.root / "dev"), self.seam, monitor_factory=lambda: self.feed, **options
        )  # type: ignore[arg-type]


class FakeProc:
    """``/proc`` written from the simulated kernel's file table, for the live source's scan:
    ``PID/comm``, ``PID/fd/N`` linking to the node under the tree's /dev (with the kernel's
    " (deleted)" once the node is gone) and ``PID/fdinfo/N``.  The links point at plain files
    (or nothing); ``calls`` gives each link its device's number through the ``stat`` seam."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.proc = root / "proc"
        self.numbers: dict[str, tuple[int, int]] = {}  # link text -> (major, minor)

    def sync(self, k: Kernel) -> None:
        if self.proc.exists():
            shutil.rmtree(self.proc)
        self.proc.mkdir()
        self.numbers.clear()
        for f in k.view.open_files():
            d = self.proc / str(f.task.pid)
            (d / "fd").mkdir(parents=True, exist_ok=True)
            (d / "fdinfo").mkdir(exist_ok=True)
            (d / "comm").write_text(f.task.comm + "\n")
            target = f"{self.root}{f.path}"
            os.symlink(target, d / "fd" / str(f.fd))
            (d / "fdinfo" / str(f.fd)).write_text("pos:\t0\nflags:\t02\nmnt_id:\t25\n")
            if f.devt is not None:
                self.numbers[target] = f.devt

    @property
    def calls(self) -> Calls:
        def seam_stat(name: str, *, dir_fd: int | None = None) -> os.stat_result | SimpleNamespace:
            try:
                target = os.readlink(name, dir_fd=dir_fd)
            except OSError:
                target = ""
            if target in self.numbers:
                return SimpleNamespace(
                    st_mode=stat.S_IFCHR | 0o660, st_rdev=os.makedev(*self.numbers[target]), st_uid=0
                )
            return os.stat(name, dir_fd=dir_fd)

        return dataclasses.replace(SYSCALLS, stat=seam_stat)


class PipeMonitor:
    description = "events: test feed"

    def __init__(self) -> None:
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        self._queue: list[dict[str, str]] = []

    def fileno(self) -> int:
        return self._r

    def send(self, env: dict[str, str]) -> None:
        self._queue.append(env)
        os.write(self._w, b"!")

    def receive(self) -> list[dict[str, str]]:
        with contextlib.suppress(BlockingIOError):
            os.read(self._r, 4096)
        out, self._queue = self._queue, []
        return out

    def close(self) -> None:
        os.close(self._r)
        os.close(self._w)


#: mc-dev-allocator.c's dev_dbg() call sites (line, function): the functions are the real ones, the line numbers made up
ALLOCATOR_SITES = (
    (44, "media_device_instance_release"),
    (56, "media_device_delete"),
    (96, "__media_device_get"),
    (105, "__media_device_get"),
    (110, "__media_device_get"),
)


class FakeDynamicDebug:
    """``/sys/kernel/debug/dynamic_debug/control`` for tests: reading lists the call sites
    (``path:line [module]function =flags "format"``, ``_`` for no flags), writing applies
    ``file NAME [line N] +p|-p`` queries, one per write(), as the kernel does (EINVAL for
    anything else).  ``open`` stands in for the builtin on that one path."""

    PATH = "/sys/kernel/debug/dynamic_debug/control"

    def __init__(self, printing: tuple[int, ...] = (), *, writable: bool = True) -> None:
        self.flags = {line: ("p" if line in printing else "") for line, _ in ALLOCATOR_SITES}
        self.writable = writable
        self.queries: list[str] = []
        self.opened_for_writing = 0

    def listing(self) -> str:
        rows = ["# filename:lineno [module]function flags format"]
        rows.append('drivers/media/usb/au0828/au0828-core.c:40 [au0828]au0828_debug =p "%s"')
        for line, function in ALLOCATOR_SITES:
            flags = self.flags[line] or "_"
            rows.append(f'drivers/media/mc/{ALLOCATOR_FILE}:{line} [mc]{function} ={flags} "%s: ..."')
        return "\n".join(rows) + "\n"

    def apply(self, query: str) -> None:
        words = query.split()
        if len(words) not in (3, 5) or words[0] != "file" or words[-1] not in ("+p", "-p"):
            raise OSError(errno.EINVAL, "Invalid argument")
        if words[1] != ALLOCATOR_FILE:
            return
        lines = [int(words[3])] if len(words) == 5 and words[2] == "line" else list(self.flags)
        for line in lines:
            if line in self.flags:
                self.flags[line] = "p" if words[-1] == "+p" else ""
        self.queries.append(query)

    def open(self, path: object, mode: str = "r", *args: object, **kwargs: object) -> object:
        if str(path) != self.PATH:
            return builtins.open(path, mode, *args, **kwargs)  # type: ignore[call-overload]
        if "w" in mode or "a" in mode:
            if not self.writable:
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            self.opened_for_writing += 1
            return _QueryWriter(self, "b" not in mode)
        data = self.listing().encode()
        return io.BytesIO(data) if "b" in mode else io.StringIO(data.decode())

    @property
    def printing(self) -> set[int]:
        return {line for line, flags in self.flags.items() if "p" in flags}


class _QueryWriter:
    def __init__(self, control: FakeDynamicDebug, text: bool) -> None:
        self.control, self.text = control, text

    def write(self, data: str | bytes) -> int:
        query = data if isinstance(data, str) else data.decode()
        for line in query.splitlines():
            if line.strip():
                self.control.apply(line.strip())
        return len(data)

    def __enter__(self) -> _QueryWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class FaultyFs(Fs):
    """The reader's file-system seam with a live tree's failures, for tests that run as root
    (where ``chmod 000`` denies nothing): ``faults`` maps a path to the errno every access
    to it or below it fails with (EACCES, EIO...), checked against the path as asked for and
    as resolved; a path in ``vanish`` is removed right after a listing names it (a device
    unplugged between ``listdir`` and ``read``).  ``listed`` records every listing made."""

    def __init__(self, faults: dict[str, int] | None = None, vanish: set[str] | None = None) -> None:
        self.faults = dict(faults or {})
        self.vanish = set(vanish or ())
        self.listed: dict[str, list[str]] = {}

    def _check(self, path: Path | str) -> None:
        text = str(path)
        for where, code in self.faults.items():
            if text == where or text.startswith(where.rstrip("/") + "/"):
                raise OSError(code, os.strerror(code), text)

    def read(self, path: Path, limit: int = MAX_ATTRIBUTE) -> bytes:
        self._check(path)
        self._check(os.path.realpath(path))
        return super().read(path, limit)

    def listdir(self, path: Path) -> list[str]:
        self._check(path)
        self._check(os.path.realpath(path))
        names = super().listdir(path)
        self.listed[str(path)] = names
        for name in names:
            if str(Path(path) / name) in self.vanish:
                _remove(Path(path) / name)
        return names

    def readlink(self, path: Path) -> str:
        self._check(path)
        return super().readlink(path)

    def realpath(self, path: Path) -> Path:
        self._check(path)
        real = super().realpath(path)
        self._check(real)
        return real

    def islink(self, path: Path) -> bool:
        try:
            self._check(path)
        except OSError:
            return False  # os.path.islink's answer for a path it cannot lstat
        return super().islink(path)

    def walk(self, path: Path) -> Iterator[tuple[str, list[str], list[str]]]:
        """os.walk through this seam: a directory that fails to list is skipped, as os.walk
        skips it; symlinks are not followed."""
        try:
            names = self.listdir(path)
        except OSError:
            return
        dirs = [n for n in names if os.path.isdir(Path(path) / n) and not os.path.islink(Path(path) / n)]
        files = [n for n in names if n not in dirs]
        yield str(path), dirs, files
        for d in dirs:
            yield from self.walk(Path(path) / d)


def _remove(path: Path) -> None:
    if path.is_symlink() or not path.is_dir():
        with contextlib.suppress(OSError):
            path.unlink()
    else:
        shutil.rmtree(path, ignore_errors=True)
