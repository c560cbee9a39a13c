"""The rig's server: the simulated kernel behind a umockdev testbed, and COMMAND run in it.

Runs on the interpreter that has GObject introspection (Debian's ``/usr/bin/python3`` with
``python3-gi`` and ``gir1.2-umockdev-1.0``), under ``umockdev-wrapper`` so that its own
libudev calls see the testbed; ``mdtui rig`` (mdtui/rig/launch.py) starts it.  It imports
nothing outside ``allocator`` and the Textual-free parts of ``mdtui``.

What the programs inside see:

* ``/sys`` and ``/dev``: the tree ``mdtui.rig.tree`` writes from the simulation, rewritten
  after every change (staged, then swapped in: a reader never sees half a tree), with
  ``/dev/.node`` entries so that umockdev's preload reports the nodes as character devices;
* ``/dev/mediaN``: every open is an open of the simulated devnode (it pins the owner module,
  as ``media_open()`` does through the cdev owner) and every ioctl is answered by
  ``mdtui.live.answer.respond`` from the media device that fd was opened on, so an fd kept
  across an unregister gets EIO while a new open reaches the new device;
* uevents: each one the simulation emits, sent after the tree shows its result
  (``mdtui.rig.uevents``);
* writes to ``/sys/bus/usb/drivers/*/{bind,unbind}``: applied to the simulation through the
  control socket by the write shim (``mdtui/rig/shim.c``), which makes write() fail with
  the simulation's errno; the shim also makes a close() of /dev/mediaN wait until the
  simulated file is closed, as the kernel's close does;
* ``$MDTUI_RIG_CONTROL``: a Unix socket taking lifecycle lines (``unplug 1-1``, the script
  language); the reply is ``ok`` or ``error ERRNO ERRNO_NAME message``.

Usage: python3 -m mdtui.rig.server [--script FILE] [--variant V] -- COMMAND...
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import gi

gi.require_version("UMockdev", "1.0")
from gi.repository import GLib, UMockdev  # noqa: E402

from allocator import Event, KernelError  # noqa: E402
from allocator.events import UEVENT  # noqa: E402
from allocator.mc.device import MediaDevice  # noqa: E402

from ..live import uapi  # noqa: E402
from ..live.answer import respond  # noqa: E402
from ..script import ScriptError, Step, load, parse  # noqa: E402
from ..sources.sim import DEFAULT_WORLD, SimSource, build  # noqa: E402
from . import uevents  # noqa: E402
from .tree import write_tree  # noqa: E402

_POINTER = struct.Struct("<Q")


class Rig:
    """The simulation, the testbed it is shown in, and the glue between them."""

    def __init__(self, source: SimSource) -> None:
        self.source = source
        self.kernel = source.kernel
        self.testbed = UMockdev.Testbed.new()
        self.root = Path(self.testbed.get_root_dir())
        self.handlers: dict[str, MediaNode] = {}
        self._uevents: list[Event] = []
        self.sender = uevents.Sender(str(self.root))
        source.subscribe(self._event)
        with source.lock:
            self.sync()

    def _event(self, event: Event) -> None:
        if event.kind == UEVENT:
            self._uevents.append(event)

    # -- the tree ----------------------------------------------------------------------

    def sync(self) -> None:
        """Show the simulation's current state, then send the uevents that led to it.
        Callers hold ``source.lock``."""
        stage = self.root / ".stage"
        if stage.exists():
            shutil.rmtree(stage)
        write_tree(self.kernel, stage)
        nodes = stage / "dev" / ".node"
        nodes.mkdir(parents=True, exist_ok=True)
        for dev in self.kernel.devices.devices.values():
            if dev.devname and dev.devt is not None:
                (nodes / dev.devname.replace("/", "_")).symlink_to(f"{dev.devt[0]}:{dev.devt[1]}")
        for part in ("sys", "dev"):
            old = self.root / f".old-{part}"
            if (self.root / part).exists():
                (self.root / part).rename(old)
            (stage / part).rename(self.root / part)
            if old.exists():
                shutil.rmtree(old)
        shutil.rmtree(stage)
        for minor in self.kernel.media_bus.live:
            node = f"/dev/media{minor}"
            if node not in self.handlers:
                self.handlers[node] = MediaNode(self, node)
                self.testbed.attach_ioctl(node, self.handlers[node])
        sent, self._uevents = self._uevents, []
        for event in sent:
            self.sender.send(event.fields)

    def sync_refcnts(self) -> None:
        """An open or close of /dev/mediaN moves module refcnts and nothing else (and sends
        no uevent, as on a real machine): rewrite just those files."""
        for name, mod in self.kernel.modules.items():
            path = self.root / "sys" / "module" / name / "refcnt"
            if path.parent.is_dir() and path.read_text() != f"{mod.refcnt}\n":
                staged = path.with_name(".refcnt")  # replaced whole: a reader never sees it empty
                staged.write_text(f"{mod.refcnt}\n")
                staged.replace(path)

    # -- actions -----------------------------------------------------------------------

    def run_line(self, line: str) -> str:
        """One line from the control socket: ``reset [SCRIPT]`` or a lifecycle line; the
        answer is ``ok`` or ``error ERRNO NAME message``."""
        words = line.split()
        if words[:1] == ["closed"] and len(words) == 2:
            self.wait_closed(words[1])
            return "ok"
        self.reap()
        try:
            if words[:1] == ["reset"]:
                self.reset(load(words[1]) if len(words) > 1 else list(DEFAULT_WORLD))
                return "ok"
            steps = parse(line, "control")
        except ScriptError as exc:
            return f"error {errno.EINVAL} EINVAL {exc}"
        with self.source.lock:
            try:
                for step in steps:
                    self.source.run(step)
            except KernelError as exc:
                return f"error {exc.errno} {exc.errno_name} {exc.strerror}"
            finally:
                self.sync()
        return "ok"

    def reset(self, steps: list[Step]) -> None:
        """A new machine built by ``steps`` (what failed in it is printed, as at start-up).
        Files open on the old one stay open there: their ioctls get EIO, as on a machine
        whose devices all went away."""
        source, failed = build(steps, variant=self.kernel.variant)
        report(failed)
        with self.source.lock, source.lock:
            self.source, self.kernel = source, source.kernel
            source.subscribe(self._event)
            self._uevents.clear()
            self.sync()

    def apply_stdio_writes(self) -> bool:
        """Writes the shim cannot see (through glibc's stdio, e.g. bash's ``echo``) land in
        the bind/unbind files themselves: apply and empty them.  Their errno cannot be
        returned; a refusal is printed.  Polled from the main loop every 50 ms."""
        with self.source.lock:
            for path in (self.root / "sys" / "bus" / "usb" / "drivers").glob("*/*bind"):
                text = path.read_text().strip() if path.stat().st_size else ""
                if text:
                    path.write_text("")
                    answer = self.run_line(f"{path.name} {path.parent.name} {text}")
                    if answer != "ok":
                        print(
                            f"mdtui rig: echo {text} > /sys/bus/usb/drivers/{path.parent.name}/{path.name}: {answer}",
                            file=sys.stderr,
                        )
        return True  # keep polling

    def open_node(self, node: str) -> tuple[int, MediaDevice] | None:
        """``open()`` of a /dev/mediaN inside the testbed: the simulated file and the media
        device behind it, or None when nothing is registered there (the client already has
        its fd on the testbed file; its ioctls get ENXIO)."""
        self.reap()
        with self.source.lock:
            try:
                fd = self.kernel.files.open(node)
            except KernelError:
                return None
            devt = self.kernel.files.files[fd].device.devt
            mdev = next((m for m in self.kernel.media_bus.live.values() if m.devnode.device.devt == devt), None)
            self.sync_refcnts()  # the cdev owner's module is pinned
        return (fd, mdev) if mdev is not None else None

    def wait_closed(self, node: str, timeout: float = 0.25) -> None:
        """The shim's ``closed /dev/mediaN``: a process closed an fd there.  Wait for the main
        loop to see that client go (a few ms), then close the simulated file."""
        handler = self.handlers.get(node)
        deadline = time.monotonic() + timeout
        while handler is not None and time.monotonic() < deadline:
            if any(not client.get_connected() for client in list(handler.clients)):
                break
            time.sleep(0.001)
        self.reap()

    def reap(self) -> bool:
        """Close, in the simulation, every /dev/mediaN fd its process has closed.  Run before
        each rig operation, so that a close that happened before an action is seen before it,
        and every 20 ms from the main loop (returns True: keep the timer)."""
        with self.source.lock:
            fds = [fd for handler in self.handlers.values() for fd in handler.closed()]
            for fd in fds:
                with contextlib.suppress(KernelError):  # a reset machine no longer has it
                    self.kernel.files.close(fd)
            if fds:
                self.sync_refcnts()
        return True


class MediaNode(UMockdev.IoctlBase):
    """The ioctls of one /dev/mediaN: each client answered from the device it opened."""

    def __init__(self, rig: Rig, node: str) -> None:
        super().__init__()
        self.rig = rig
        self.node = node
        self.clients: dict[Any, tuple[int, MediaDevice] | None] = {}

    def do_client_connected(self, client: Any) -> None:
        self.clients[client] = self.rig.open_node(self.node)

    def closed(self) -> list[int]:
        """The simulated fds of clients that have closed theirs.  umockdev 0.17 never emits
        ``client-vanished`` (nor notifies ``connected``), so the rig asks each client."""
        gone = [client for client in self.clients if not client.get_connected()]
        return [opened[0] for client in gone if (opened := self.clients.pop(client)) is not None]

    def do_handle_ioctl(self, client: Any) -> bool:
        request = client.get_request() & 0xFFFFFFFF
        opened = self.clients.get(client)
        if request not in uapi.REQUESTS:
            client.complete(-1, errno.ENOTTY)
            return True
        if opened is None:
            client.complete(-1, errno.ENXIO)
            return True
        arg = client.get_arg().resolve(0, (request >> 16) & 0x3FFF)
        raw = bytes(arg.retrieve())
        with self.rig.source.lock:
            reply = respond(opened[1], request, raw)
        if reply.errno:
            client.complete(-1, reply.errno)
            return True
        for pointer, payload in reply.writes:
            if not payload:
                continue
            offset = next(o for o in range(0, len(raw) - 7, 8) if _POINTER.unpack_from(raw, o)[0] == pointer)
            arg.resolve(offset, len(payload)).update(0, list(payload))
        if reply.arg is not None:
            arg.update(0, list(reply.arg))
        client.complete(0, 0)
        return True


def report(failed: list[tuple[Step, KernelError]]) -> None:
    for step, exc in failed:
        print(f"mdtui rig: line {step.line}: {step}: {exc.errno_name}: {exc.strerror}", file=sys.stderr)


def build_shim(directory: Path) -> Path:
    """Compile shim.c (bind/unbind writes that fail with the simulation's errno)."""
    out = directory / "mdtui-rig-shim.so"
    source = Path(__file__).with_name("shim.c")
    cc = os.environ.get("CC", "cc")
    subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(out), str(source), "-ldl"], check=True)
    return out


def serve_control(rig: Rig, path: str) -> None:
    """Lifecycle lines, one reply line each, from any number of connections."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen()

    def handle(conn: socket.socket) -> None:
        with conn, conn.makefile("rw") as stream:
            for line in stream:
                stream.write(rig.run_line(line.strip()) + "\n")
                stream.flush()

    def accept() -> None:
        while True:
            conn, _ = server.accept()
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()


def main(argv: list[str] | None = None) -> int:
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
    control = str(rig.root / "control.sock")
    serve_control(rig, control)
    shim = build_shim(rig.root)
    preload = " ".join(p for p in (str(shim), os.environ.get("LD_PRELOAD", "")) if p)
    # the Testbed set UMOCKDEV_DIR in C only: os.environ never saw it
    env = dict(os.environ, UMOCKDEV_DIR=str(rig.root), MDTUI_RIG_CONTROL=control, LD_PRELOAD=preload)
    child = subprocess.Popen(command, env=env)
    loop = GLib.MainLoop()
    GLib.timeout_add(50, rig.apply_stdio_writes)
    GLib.timeout_add(20, rig.reap)

    def wait() -> None:
        child.wait()
        GLib.idle_add(loop.quit)

    threading.Thread(target=wait, daemon=True).start()
    try:
        loop.run()
    finally:
        shutil.rmtree(rig.root, ignore_errors=True)  # the Testbed's own cleanup needs its finalizer
    return child.returncode


if __name__ == "__main__":
    sys.exit(main())
