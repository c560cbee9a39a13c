"""``--source ssh:HOST`` over localhost (issue #14): a real sshd (tests/sshd.py) whose
sessions reach the rig, the agent on the target's python3.

Run from the checkout: ``.venv/bin/python bench/remote_bench.py``.  It re-runs itself inside
``mdtui rig`` and prints:

* remote event to screen: the TUI (headless, on ``--source ssh:board-a``) while the rig's
  control socket unbinds and binds au0828 in turn, ROUNDS times; from the first uevent of
  the change reaching the target's user space (a netlink listener of the bench's own, beside
  the agent) to the app having applied the update whose refcount shows the change.  p50, p90,
  p99, max.  (The rig itself takes ~150 ms to rebuild its tree before it sends the uevents:
  that is the simulated kernel's time, not mdtui's, and is not counted.);
* the agent's CPU while nothing happens: utime+stime of the agent process (on the target)
  over IDLE seconds, in clock ticks;
* bytes on the wire: the agent's first (whole) snapshot, the HVR-950Q's part of it, and the
  patches sent for an unbind and a bind;
* the agent's own work per change away from the rig's emulation: the agent (this Python) on a
  sysfs tree written from the simulation with an ioctl seam answering in kernel-layout bytes
  (tests/doubles.py), au0828 unbound and bound in turn, ROUNDS times: from its uevent handed
  to the agent to the update line written (read, encode, patch), p50 and p99.

Prints figures, asserts nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ROUNDS = 200
SPAN: list[float] = []  # per round: from the first uevent of the change to its last
SPLIT: list[tuple[float, float]] = []  # per round: event to the update received, then to the screen
IDLE = 5.0


def control(line: str) -> str:
    from mdtui.rig.control import send

    return send(os.environ["MDTUI_RIG_CONTROL"], line)


def agent_pid(server_pid: int) -> int:
    """The agent: the python process below sshd."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if len(cmd) > 3 and cmd[1:3] == [b"-I", b"-S"] and b"base64" in cmd[4 if cmd[3] == b"-c" else 3]:
            return int(name)
    raise RuntimeError("no agent found")


def ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))]


class Arrivals:
    """When uevents reach user space: a netlink listener on its own thread."""

    def __init__(self) -> None:
        import threading

        from mdtui.live.netlink import NetlinkMonitor

        self.times: list[float] = []
        self._monitor = NetlinkMonitor()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        import select

        while True:
            select.select([self._monitor.fileno()], [], [])
            now = time.perf_counter()
            if self._monitor.receive():
                self.times.append(now)

    def first_after(self, start: float) -> float:
        return next(t for t in self.times if t >= start)


async def latency(app, arrivals: Arrivals) -> list[float]:  # type: ignore[no-untyped-def]
    from mdtui.scenarios import on_update, settle

    applied: list[tuple[float, int | None]] = []

    def seen(update) -> None:  # type: ignore[no-untyped-def]
        dev = update.snapshot.device("1-1")
        applied.append((time.perf_counter(), dev.refcount if dev else None))

    received: list[tuple[float, int | None]] = []  # when the source had the update (its events' thread)
    source = app.source

    def arrived(_event) -> None:  # type: ignore[no-untyped-def]
        dev = source.snapshot().device("1-1")
        received.append((time.perf_counter(), dev.refcount if dev else None))

    source.subscribe(arrived)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app)
        on_update(app, seen)
        out = []
        for n in range(ROUNDS):
            want = 1 if n % 2 == 0 else 2
            line = "unbind au0828 1-1:1.0" if want == 1 else "bind au0828 1-1:1.0"
            start = time.perf_counter()
            reply = await asyncio.get_running_loop().run_in_executor(None, control, line)
            assert reply == "ok", reply
            while not any(t >= start and r == want for t, r in applied):
                await asyncio.sleep(0.0005)
            first = arrivals.first_after(start)
            SPAN.append(max(t for t in arrivals.times if t >= start) - first)
            got = next((t for t, r in received if t >= start and r == want), None)
            assert got is not None, (received[-3:], start, want)
            out.append(next(t for t, r in applied if t >= start and r == want) - first)
            SPLIT.append((got - first, out[-1] - (got - first)))
            await pilot.pause()
            await asyncio.sleep(0.02)
        return out


def agent_cost() -> list[float]:
    """ms per change of the agent's own work (no ssh, no umockdev): see the docstring."""
    from allocator import Kernel
    from mdtui.remote.agent import Agent
    from tests.doubles import WrittenMachine

    k = Kernel()
    for m in ("au0828", "snd_usb_audio", "uvcvideo"):
        k.modprobe(m)
    k.plug("hvr950q")
    k.plug("c270")
    machine = WrittenMachine(k)
    source = machine.source(close_watch=None)
    sent: list[bytes] = []
    agent = Agent(source, write=sent.append)
    source.start()
    agent.update()
    out = []
    for n in range(ROUNDS):
        action = "unbind" if n % 2 == 0 else "bind"
        getattr(k, action)("au0828", "1-1:1.0")
        machine.sync()
        devpath = next(u.devpath for u in k.view.usb_devices() if u.name == "1-1")
        machine.feed.send(
            {"ACTION": action, "DEVPATH": f"{devpath}/1-1:1.0", "SUBSYSTEM": "usb", "DEVTYPE": "usb_interface"}
        )
        before = len(sent)
        start = time.perf_counter()
        source.handle_readable()
        agent._update(scan=False)  # the state's update (a due /proc scan follows it: not counted)
        out.append((time.perf_counter() - start) * 1000)
        assert len(sent) > before
        agent._update(scan=True)
    source.stop()
    return out


def inside() -> None:
    import tempfile

    from mdtui.app import MdtuiApp
    from mdtui.live.netlink import NetlinkMonitor
    from mdtui.remote import wire
    from mdtui.sources.live import LiveSource
    from mdtui.sources.remote import RemoteSource
    from tests.pythons import oldest_python
    from tests.sshd import SshServer, rig_env

    with tempfile.TemporaryDirectory() as bin_dir:
        python = os.environ.get("BENCH_PYTHON", oldest_python())
        os.symlink(python, Path(bin_dir) / "python3")
        with SshServer(session_env=rig_env(), session_path=f"{bin_dir}:/usr/bin:/bin") as server:
            os.environ["MDTUI_SSH"] = server.mdtui_ssh
            version = subprocess.run([python, "-V"], capture_output=True, text=True).stdout.strip()
            print(f"target python3: {version}; OpenSSH on 127.0.0.1:{server.port}")
            cost = agent_cost()
            for name, part in (("unbind", cost[0::2]), ("bind", cost[1::2])):
                print(
                    f"agent's own work per {name}, off the rig ({sys.version.split()[0]}): "
                    f"p50 {percentile(part, 50):.1f} ms, p99 {percentile(part, 99):.1f} ms"
                )

            # bytes: one agent, its lines counted
            lines: list[bytes] = []
            source = RemoteSource("board-a")
            receive = source._receive
            source._receive = lambda raw, fatal: (lines.append(raw), receive(raw, fatal))[1]  # type: ignore[method-assign]
            assert source.ready(30) == []
            first = next(json.loads(r) for r in lines if b'"snapshot"' in r)
            hvr = first["snapshot"]["media_devices"]["items"]["1-1"]
            sizes = [len(r) for r in lines if b'"t":"update"' in r]
            print(f"first snapshot: {sizes[0]:,} bytes on the wire (whole machine: 2 media devices, 7 USB devices)")
            print(f"  the HVR-950Q's part: {len(json.dumps(hvr, separators=(',', ':'))):,} bytes")
            for step, want in (("unbind", 1), ("bind", 2)):
                before = len(lines)
                control(f"{step} au0828 1-1:1.0")
                deadline = time.monotonic() + 10
                while source.snapshot().device("1-1").refcount != want and time.monotonic() < deadline:
                    time.sleep(0.005)
                time.sleep(0.3)
                sent = [r for r in lines[before:] if b'"t":"update"' in r]
                patch = sum(len(json.dumps(wire.parse(r).get("patch"), separators=(",", ":"))) for r in sent)
                print(
                    f"  {step} au0828: {len(sent)} updates, {sum(map(len, sent)):,} bytes ({patch:,} of them patches)"
                )

            pid = agent_pid(server.pid or 0)
            time.sleep(0.5)
            start = ticks(pid)
            time.sleep(IDLE)
            print(f"agent idle: {ticks(pid) - start} clock ticks of CPU in {IDLE:g} s (pid {pid})")
            source.stop()

            arrivals = Arrivals()
            for name, make in (
                ("remote (ssh:board-a)", lambda: RemoteSource("board-a")),
                ("local live source, same rig", lambda: LiveSource(monitor_factory=NetlinkMonitor)),
            ):
                SPLIT.clear()
                times = asyncio.run(latency(MdtuiApp(make()), arrivals))
                ms = [t * 1000 for t in times]
                print(
                    f"{name}: event to screen, {len(ms)} rounds: p50 {percentile(ms, 50):.1f} ms, "
                    f"p90 {percentile(ms, 90):.1f} ms, p99 {percentile(ms, 99):.1f} ms, max {max(ms):.1f} ms"
                )
                span = [s * 1000 for s in SPAN]
                SPAN.clear()
                p50, p99 = percentile(span, 50), percentile(span, 99)
                print(f"  first uevent to last (the rig's burst): p50 {p50:.1f} ms, p99 {p99:.1f} ms")
                for part, what in enumerate(("event to the source's update", "that update to the screen")):
                    ms = [s[part] * 1000 for s in SPLIT]
                    print(f"  {what}: p50 {percentile(ms, 50):.1f} ms, p99 {percentile(ms, 99):.1f} ms")
            control("reset")


if __name__ == "__main__":
    if "MDTUI_RIG_CONTROL" in os.environ:
        inside()
    else:
        sys.exit(subprocess.call([sys.executable, "-m", "mdtui", "rig", "--", sys.executable, __file__]))
