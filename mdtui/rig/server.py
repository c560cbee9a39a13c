"""The rig's server: the simulated kernel behind a umockdev testbed, and COMMAND run in it.

Runs on the interpreter that has GObject introspection (Debian's ``/usr/bin/python3`` with
``python3-gi`` and ``gir1.2-umockdev-1.0``), under ``umockdev-wrapper`` so that its own
libudev calls see the testbed; ``mdtui rig`` (mdtui/rig/launch.py) becomes it.  It imports
nothing outside ``allocator`` and the Textual-free parts of ``mdtui``.

What the programs inside see:

* ``/sys`` and ``/dev``: the tree ``mdtui.rig.tree`` writes from the simulation, rewritten
  after every change: ``/sys`` staged, then swapped in (a reader never sees half a tree);
  ``/dev`` updated in place, as devtmpfs updates it, with ``/dev/.node`` entries so that
  umockdev's preload reports the nodes as character devices.  A node whose device stays
  registered stays the same file, so a process's fd on it still reads ``/dev/video0`` in
  ``/proc/PID/fd`` (and ``/dev/video0 (deleted)`` once its device is gone); the number of
  every node file made is recorded by inode (``RDEV``) for a stat through such an fd
  (``mdtui/rig/proc_fd.c``);
* ``/dev/mediaN``: every open is an open of the simulated devnode (it pins the owner module,
  as ``media_open()`` does through the cdev owner), released when the client closes it or
  goes away however it goes (``mdtui.rig.peers``); every ioctl is answered from the media
  device that fd was opened on, bad pointers included (``mdtui.rig.ioctls``), so an fd kept
  across an unregister gets EIO while a new open reaches the new device;
* the video/VBI nodes, ALSA control nodes and DVB frontends likewise: opens of the simulated
  node, ioctls answered by its ``unlocked_ioctl`` (QUERYCAP, CARD_INFO, FE_GET_INFO...);
* uevents: each one the simulation emits, sent after the tree shows its result
  (``mdtui.rig.uevents``);
* writes to ``/sys/bus/usb/drivers/*/{bind,unbind}``: the written bytes are one device name,
  looked up as the driver core does (``sysfs-write`` from the write shim ``shim.c``, which
  makes write() fail with the simulation's errno; or found in the file, for writes through
  stdio the shim cannot see);
* ``$MDTUI_RIG_CONTROL``: a Unix socket taking lifecycle lines (``unplug 1-1``, the script
  language); the reply is ``ok`` or ``error ERRNO ERRNO_NAME message`` (``mdtui.rig.control``);
* ``/dev/kmsg``: the simulation's printk, one record per read (``$MDTUI_RIG_KMSG``, which the
  shim connects an open of /dev/kmsg to), and ``/sys/kernel/debug/dynamic_debug/control``: the
  simulated kernel's dev_dbg call sites, a write to it a batch of queries
  (``$MDTUI_RIG_DYNDBG``); each machine has its own log (``mdtui.rig.kmsg``).

COMMAND runs as a shell runs a foreground command (``mdtui.rig.command``); when it ends, the
rig stops serving, then removes the testbed.

Usage: python3 -m mdtui.rig.server [--script FILE] [--variant V] -- COMMAND...
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import gi

gi.require_version("UMockdev", "1.0")
from gi.repository import GLib, UMockdev  # noqa: E402

from allocator import Event, KernelError  # noqa: E402
from allocator.device import Device  # noqa: E402
from allocator.events import UEVENT  # noqa: E402
from allocator.sysfs import refcnt  # noqa: E402

from ..commands import Step  # noqa: E402
from ..script import ScriptError, load, parse  # noqa: E402
from ..sources.sim import DEFAULT_WORLD, SimSource, build  # noqa: E402
from . import command as cmd  # noqa: E402
from . import uevents  # noqa: E402
from .control import ControlServer, error  # noqa: E402
from .ioctls import CharNode, MediaNode, Node, Opened, char_nodes  # noqa: E402
from .kmsg import CONTROL, DEBUGFS, KMSG_DEVT, KernelLog, seqpacket_server, serve_control, serve_kmsg  # noqa: E402
from .launch import EX_UNAVAILABLE  # noqa: E402
from .peers import PeerFinder  # noqa: E402
from .tree import write_tree  # noqa: E402

SYSFS_OPS = ("bind", "unbind")
STDIO_READ = 64 * 1024  # what is read of a bind/unbind file written through stdio
#: under the testbed's root: each node file's number by inode, ``ST_DEV:ST_INO -> "MAJ:MIN NAME"``
#: (symlinks), read by the preload library for a stat through a /proc fd link (proc_fd.c)
RDEV = ".rdev"


def device_name(data: bytes) -> str:
    """The device a bind/unbind store looks up: the written bytes as one C string (up to a
    NUL), one trailing newline ignored, as ``sysfs_streq()`` compares; nothing else stripped.
    Bytes that are not UTF-8 are kept as they are (they match no device)."""
    name = data.split(b"\0", 1)[0]
    if name.endswith(b"\n"):
        name = name[:-1]
    return name.decode("utf-8", "surrogateescape")


class Rig:
    """The simulation, the testbed it is shown in, and the glue between them.  ``lock`` guards
    the machine, the tree and the open files; umockdev's ioctl thread, the control socket's
    threads and the main loop all take it."""

    def __init__(self, source: SimSource) -> None:
        self.lock = threading.RLock()
        self.source = source
        self.kernel = source.kernel
        self.closing = False
        self.testbed = UMockdev.Testbed.new()
        self.root = Path(self.testbed.get_root_dir())
        self.handlers: dict[str, Node] = {}
        self.shown: dict[str, tuple[Device, tuple[int, int] | None]] = {}  # /dev's nodes: device, number
        self.peers = PeerFinder()
        self._uevents: list[Event] = []
        self.sender = uevents.Sender(str(self.root))
        self.log = kernel_log(source)
        source.subscribe(self._event)
        with self.lock:
            self.sync()

    def _event(self, event: Event) -> None:
        if event.kind == UEVENT:
            self._uevents.append(event)

    # -- the tree ----------------------------------------------------------------------

    def sync(self) -> None:
        """Show the simulation's current state, then send the uevents that led to it.
        Callers hold ``lock``.  Nothing is written once the rig is closing."""
        if self.closing:
            return
        stage = self.root / ".stage"
        if stage.exists():
            shutil.rmtree(stage)
        write_tree(self.kernel, stage)
        self._write_debugfs(stage)
        devices = self.kernel.view.device_nodes()
        numbers = stage / "dev" / ".node"
        numbers.mkdir(parents=True, exist_ok=True)
        (stage / "dev" / "kmsg").write_bytes(b"")  # opened as the log by the shim
        (numbers / "kmsg").symlink_to(f"{KMSG_DEVT[0]}:{KMSG_DEVT[1]}")
        for dev in devices.values():
            if dev.devt is not None:
                (numbers / dev.devname.replace("/", "_")).symlink_to(f"{dev.devt[0]}:{dev.devt[1]}")
        old = self.root / ".old-sys"
        if (self.root / "sys").exists():
            (self.root / "sys").rename(old)
        (stage / "sys").rename(self.root / "sys")
        if old.exists():
            shutil.rmtree(old)
        self._show_dev(stage / "dev", devices)
        shutil.rmtree(stage)
        nodes = [(node, MediaNode) for node in self.kernel.view.media_nodes()]
        for node, kind in nodes + [(node, CharNode) for node in char_nodes(self.kernel)]:
            if node not in self.handlers:
                self.handlers[node] = kind(self, node)
                self.testbed.attach_ioctl(node, self.handlers[node])
        sent, self._uevents = self._uevents, []
        for event in sent:
            self.sender.send(event.fields)

    def _show_dev(self, staged: Path, devices: dict[str, Device]) -> None:
        """Bring ``/dev`` to the ``staged`` tree in place, as devtmpfs does: a node whose device
        is the one it was made for (same device, same number, no add or remove uevent since)
        is left alone, so a file open on it is still open on ``/dev/video0``; any other node
        is made anew (renamed into place whole) and one whose device went is unlinked, so a
        file open on it reads ``/dev/video0 (deleted)`` in ``/proc/PID/fd``.

        Every node file made gets its number recorded by inode (``RDEV``), before it appears:
        the kernel's open file keeps its inode's i_rdev after the node is unlinked (when its
        ``.node`` entry is gone too) and after another device takes its name (when ``.node``
        names the new number), so the preload library reads the number of the inode that a
        stat through ``/proc/PID/fd/N`` reached.  Records are kept after their node is
        unlinked (an fd may still hold it) and rewritten when a new node gets a freed inode
        number; proc_fd.c says why a stale one is never taken.  The ``.node`` entries are
        written before the nodes they number and removed after them."""
        live = self.root / "dev"
        redone = {e.fields.get("DEVNAME") for e in self._uevents if e.fields.get("ACTION") in ("add", "remove")}
        shown = {node: (dev, dev.devt) for node, dev in devices.items()}
        kept = {
            dev.devname
            for node, (dev, devt) in shown.items()
            if node in self.shown
            and self.shown[node][0] is dev
            and self.shown[node][1] == devt
            and dev.devname not in redone
            and (live / dev.devname).is_file()
            and not (live / dev.devname).is_symlink()
        }
        records = self.root / RDEV
        records.mkdir(exist_ok=True)
        for dev in devices.values():
            made = staged / dev.devname
            if dev.devt is None or dev.devname in kept or not made.is_file():
                continue
            st = made.stat()  # the inode moves into /dev with the rename
            record = records / f"{st.st_dev}:{st.st_ino}"
            temporary = records / f".{record.name}"
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
            temporary.symlink_to(f"{dev.devt[0]}:{dev.devt[1]} {dev.devname}")
            temporary.replace(record)
        numbers = {entry.name for entry in os.scandir(staged / ".node")}
        merge_tree(staged / ".node", live / ".node", kept=set(), prune=False)  # moves them
        merge_tree(staged, live, kept, skip=frozenset({".node"}))
        for entry in list(os.scandir(live / ".node")):
            if entry.name not in numbers:
                os.unlink(entry.path)
        self.shown = shown

    def _write_debugfs(self, root: Path) -> None:
        """debugfs' dynamic_debug/control under ``root`` (``/sys/kernel/debug``, 0700 as
        debugfs is mounted), replaced whole: a reader never sees it half written."""
        debugfs = root / DEBUGFS.lstrip("/")
        control = root / CONTROL.lstrip("/")
        control.parent.mkdir(parents=True, exist_ok=True)
        debugfs.chmod(0o700)
        staged = control.with_name(".control")
        staged.write_text(self.log.listing())
        staged.chmod(0o644)
        staged.replace(control)

    def control_write(self, data: bytes) -> int:
        """A write() to dynamic_debug/control: queries applied to the machine's call sites
        (``KernelLog.control_write``: the byte count, or OSError), then the listing
        rewritten, whatever the answer (the queries before a refused one did apply)."""
        with self.lock:
            if self.closing:
                raise OSError(errno.ESHUTDOWN, "the rig is shutting down")
            try:
                return self.log.control_write(data)
            finally:
                self._write_debugfs(self.root)

    def kmsg_write(self, args: list[str]) -> str:
        """The shim's ``kmsg-write BYTES-HEX``: a write() to /dev/kmsg."""
        try:
            data = bytes.fromhex(args[0]) if args else b""
        except ValueError:
            return error(errno.EINVAL, "usage: kmsg-write BYTES-HEX")
        if len(args) > 1:
            return error(errno.EINVAL, "usage: kmsg-write BYTES-HEX")
        with self.lock:
            log = self.log
        try:
            log.write(data)
        except OSError as exc:
            return error(exc.errno or errno.EIO, exc.strerror or str(exc))
        return "ok"

    def sync_refcnts(self) -> None:
        """An open or close of /dev/mediaN moves module refcnts and nothing else (and sends
        no uevent, as on a real machine): rewrite just those files.  Callers hold ``lock``;
        a module whose directory is not (or no longer) there is skipped."""
        if self.closing:
            return
        for module in self.kernel.view.modules():
            entry = refcnt(module)
            path = self.root / entry.path.lstrip("/")
            with contextlib.suppress(FileNotFoundError):  # anything else written there is put right
                if path.read_bytes() != entry.data.encode():
                    staged = path.with_name(".refcnt")  # replaced whole: a reader never sees it empty
                    staged.write_text(entry.data)
                    staged.replace(path)

    # -- actions -----------------------------------------------------------------------

    def run_line(self, line: str) -> str:
        """One line from the control socket: ``reset [SCRIPT]``, a lifecycle line, or one of
        the shim's (``reap``, ``sysfs-write``); the answer is ``ok`` or ``error ERRNO NAME
        message``."""
        words = line.split()
        if words == ["reap"]:
            self.reap()
            return "ok"
        if words[:1] == ["sysfs-write"]:
            return self.sysfs_write_line(words[1:])
        if words[:1] == ["kmsg-write"]:
            return self.kmsg_write(words[1:])
        self.reap()
        try:
            if words[:1] == ["reset"]:
                self.reset(load(words[1]) if len(words) > 1 else list(DEFAULT_WORLD))
                return "ok"
            steps = parse(line, "control")
        except ScriptError as exc:
            return error(errno.EINVAL, str(exc))
        return self.run_steps(steps)

    def run_steps(self, steps: list[Step]) -> str:
        """Lifecycle steps on the machine, shown in the tree; ``ok`` or the first refusal.
        The tree is rewritten unless nothing ran: no step, or a first step refused without a
        uevent (a store that returns an error changes nothing)."""
        ran = False
        with self.lock:
            if self.closing:
                return error(errno.ESHUTDOWN, "the rig is shutting down")
            try:
                for step in steps:
                    self.source.perform(step)
                    ran = True
            except KernelError as exc:
                return f"error {exc.errno} {exc.errno_name} {exc.strerror}"
            finally:
                if ran or self._uevents:
                    self.sync()
                else:
                    self.sync_refcnts()
        return "ok"

    def reset(self, steps: list[Step]) -> None:
        """A new machine built by ``steps`` (what failed in it is printed, as at start-up).
        Files open on the old one stay open there: their ioctls get EIO, as on a machine
        whose devices all went away."""
        source, failed = build(steps, variant=self.kernel.variant)
        report(failed)
        with self.lock:
            self.source, self.kernel = source, source.kernel
            self.log = kernel_log(source)  # a new boot: a file open on the old log gets nothing more
            source.subscribe(self._event)
            self._uevents.clear()
            self.sync()

    def sysfs_write(self, op: str, driver: str, data: bytes) -> str:
        """``write()`` of ``data`` to /sys/bus/usb/drivers/DRIVER/OP: bind_store() and
        unbind_store() look the whole write up as one device name (ENODEV when nothing has
        that name); it is never read as a command line."""
        self.reap()
        return self.run_steps([Step(0, op, (driver, device_name(data)))])

    def sysfs_write_line(self, args: list[str]) -> str:
        """The shim's ``sysfs-write OP DRIVER-HEX BYTES-HEX``."""
        if len(args) == 2:
            args.append("")  # zero bytes (the shim answers those itself)
        try:
            op, driver, data = args[0], bytes.fromhex(args[1]), bytes.fromhex(args[2])
        except (IndexError, ValueError):
            return error(errno.EINVAL, "usage: sysfs-write OP DRIVER-HEX BYTES-HEX")
        if len(args) != 3 or op not in SYSFS_OPS:
            return error(errno.EINVAL, "usage: sysfs-write bind|unbind DRIVER-HEX BYTES-HEX")
        return self.sysfs_write(op, driver.decode("utf-8", "surrogateescape"), data)

    def apply_stdio_writes(self) -> bool:
        """Writes the shim cannot see (through glibc's stdio, e.g. bash's ``echo``) land in
        the bind/unbind files themselves: apply and empty them.  Their errno cannot be
        returned; a refusal is printed.  Polled from the main loop every 50 ms: nothing a
        file holds stops the polling (returns True: keep the timer)."""
        with self.lock:
            if self.closing:
                return True
            for path in (self.root / "sys" / "bus" / "usb" / "drivers").glob("*/*bind"):
                try:
                    self._apply_stdio_write(path)
                except Exception as exc:  # a file that went away with a reset, or a bug
                    print(f"mdtui rig: {path.name}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return True

    def _apply_stdio_write(self, path: Path) -> None:
        if path.name not in SYSFS_OPS:
            return
        with path.open("rb") as f:
            data = f.read(STDIO_READ)  # a longer name matches no device all the same
        if not data:
            return
        path.write_bytes(b"")
        answer = self.sysfs_write(path.name, path.parent.name, data)
        if answer != "ok":
            sysfs = f"/sys/bus/usb/drivers/{path.parent.name}/{path.name}"
            name = device_name(data)
            shown = repr(name) if len(name) <= 64 else f"{name[:64]!r}... ({len(name)} characters)"
            print(f"mdtui rig: echo {shown} > {sysfs}: {answer}", file=sys.stderr)

    def open_node(self, node: str) -> Opened:
        """``open()`` of a /dev/mediaN inside the testbed: the simulated file and the media
        device behind it (none when nothing is registered there: the client already has its
        fd on the testbed file, and its ioctls get ENXIO), and the rig's end of the client's
        connection (found first: it is the newest, see ``mdtui.rig.peers``)."""
        peer = self.peers.claim(node)
        self.reap()
        with self.lock:
            if self.closing:
                return Opened(None, None, None, peer)
            try:
                fd = self.kernel.files.open(node)
            except KernelError:
                return Opened(None, None, None, peer)
            opened = self.kernel.view.open_file(fd)
            self.sync_refcnts()  # the cdev owner's module is pinned
            return Opened(self.source, fd, opened.media_dev if opened is not None else None, peer)

    def reap(self) -> bool:
        """Release, in the simulation, every /dev/mediaN file no process holds any more (closed
        or exited).  Run before each rig operation, when the shim asks (at a close, and before
        a refcnt is read), and every 20 ms from the main loop (returns True: keep the timer)."""
        with self.lock:
            released = [opened.release() for handler in list(self.handlers.values()) for opened in handler.gone()]
            if self._uevents:  # a release that unregistered something (a deferred media device's)
                self.sync()
            elif any(released):
                self.sync_refcnts()
        return True

    def close(self) -> None:
        """Teardown, in order: stop serving (nothing touches the tree after this), then
        remove the testbed.  The Testbed's own cleanup needs its finalizer, which never runs
        at exit."""
        with self.lock:
            self.closing = True
        shutil.rmtree(self.root, ignore_errors=True)


def merge_tree(
    src: Path, dst: Path, kept: set[str], *, prune: bool = True, skip: frozenset[str] = frozenset(), rel: str = ""
) -> None:
    """Make ``dst`` hold what ``src`` holds, touching only what differs: directories are
    merged, a symlink with the same target and a regular file whose path (relative to the
    top, ``rel``) is in ``kept`` stay, anything else is renamed from ``src`` over it; what
    ``src`` lacks is removed unless not ``prune``.  Names in ``skip`` are left alone."""
    if dst.is_symlink() or (dst.exists() and not dst.is_dir()):
        dst.unlink()
    dst.mkdir(parents=True, exist_ok=True)
    names = set()
    for entry in sorted(os.scandir(src), key=lambda e: e.name):
        if entry.name in skip:
            continue
        names.add(entry.name)
        target, path = dst / entry.name, f"{rel}{entry.name}"
        if entry.is_dir(follow_symlinks=False):
            merge_tree(Path(entry.path), target, kept, prune=prune, rel=f"{path}/")
            continue
        if entry.is_symlink():
            if target.is_symlink() and os.readlink(target) == os.readlink(entry.path):
                continue
        elif path in kept and target.is_file() and not target.is_symlink():
            continue
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(entry.path, target)
    if prune:
        for entry in list(os.scandir(dst)):
            if entry.name not in names and entry.name not in skip:
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)


def kernel_log(source: SimSource) -> KernelLog:
    """The machine's printk ring: its boot from the event history, then every event.  Each
    machine's events go to its own log (an old machine's, after a reset, to the old one)."""
    kernel = source.kernel
    log = KernelLog(kernel.events.now, kernel.loader.builtin)
    log.replay(kernel.events.history)
    source.subscribe(log.event)
    return log


def report(failed: list[tuple[Step, KernelError]]) -> None:
    for step, exc in failed:
        print(f"mdtui rig: line {step.line}: {step}: {exc.errno_name}: {exc.strerror}", file=sys.stderr)


def build_shim(directory: Path) -> Path:
    """Compile shim.c; raises RuntimeError with one line saying why it could not be."""
    out = directory / "mdtui-rig-shim.so"
    source = Path(__file__).with_name("shim.c")
    cc = os.environ.get("CC", "cc")
    line = [cc, "-shared", "-fPIC", "-O2", "-o", str(out), str(source), "-ldl", "-lpthread"]
    try:
        done = subprocess.run(line, capture_output=True, text=True, errors="replace")
    except OSError as exc:
        raise RuntimeError(f"cannot build the rig's shim: {cc}: {exc.strerror}") from exc
    if done.returncode != 0:
        first = next((ln for ln in done.stderr.splitlines() if "error" in ln), done.stderr.strip()[:200])
        status = done.returncode if done.returncode >= 0 else 128 - done.returncode
        why = f"{cc} exited with status {status}" + (f": {first}" if first else "")
        raise RuntimeError(f"cannot build the rig's shim: {why}")
    return out


def serve(rig: Rig, relay: cmd.Relay, command: list[str]) -> int:
    """Serve the testbed while COMMAND runs in it; the rig's exit status."""
    control = ControlServer(rig.run_line, str(rig.root / "control.sock"))
    kmsg = seqpacket_server(str(rig.root / "kmsg.sock"), lambda conn: serve_kmsg(conn, lambda: rig.log))
    dyndbg = seqpacket_server(str(rig.root / "dyndbg.sock"), lambda conn: serve_control(conn, rig.control_write))
    try:
        try:
            shim = build_shim(rig.root)
        except RuntimeError as exc:
            print(f"mdtui rig: {exc}", file=sys.stderr)
            return EX_UNAVAILABLE
        preload = " ".join(p for p in (str(shim), os.environ.get("LD_PRELOAD", "")) if p)
        # the Testbed set UMOCKDEV_DIR in C only: os.environ never saw it
        env = dict(
            os.environ,
            UMOCKDEV_DIR=str(rig.root),
            MDTUI_RIG_CONTROL=control.path,
            MDTUI_RIG_KMSG=kmsg.path,
            MDTUI_RIG_DYNDBG=dyndbg.path,
            LD_PRELOAD=preload,
        )
        try:
            pid = relay.start(lambda: cmd.spawn(command, env))
        except OSError as exc:
            message, status = cmd.cannot_run(command, exc)
            print(message, file=sys.stderr)
            return status
        if pid is None:
            return 128 + (relay.early or 0)
        return run_loop(rig, pid)
    finally:
        control.close()
        kmsg.close()
        dyndbg.close()


def run_loop(rig: Rig, pid: int) -> int:
    """The main loop, until COMMAND ends; its exit status."""
    loop = GLib.MainLoop()
    GLib.timeout_add(50, rig.apply_stdio_writes)
    GLib.timeout_add(20, rig.reap)
    status: list[int] = []

    def wait() -> None:
        status.append(cmd.exit_status(os.waitpid(pid, 0)[1]))
        GLib.idle_add(loop.quit)

    threading.Thread(target=wait, name="command", daemon=True).start()
    loop.run()
    return status[0]


def main(argv: list[str] | None = None) -> int:
    relay = cmd.Relay()  # before any thread starts
    parser = argparse.ArgumentParser(prog="mdtui rig (server)")
    parser.add_argument("--script")
    parser.add_argument("--variant", default="mainline")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no COMMAND to run")
    try:
        steps = load(args.script) if args.script else list(DEFAULT_WORLD)
    except (OSError, ScriptError) as exc:
        print(f"mdtui rig: {exc}", file=sys.stderr)
        return 2
    source, failed = build(steps, variant=args.variant)
    report(failed)
    rig = Rig(source)
    try:
        return serve(rig, relay, command)
    finally:
        rig.close()


if __name__ == "__main__":
    sys.exit(main())
