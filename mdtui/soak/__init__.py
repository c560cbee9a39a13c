"""``mdtui soak``: the kernel's allocator tests against one shared device, with a verdict (#13).

The scenarios are in ``scenarios.py``, the machines they run on (the simulation, a live
machine, the rig) in ``machine.py``, a machine over ssh in ``remote.py``, the output (table,
JSON, JUnit XML) in ``report.py`` and the progress bar in ``progress.py``; this module is
the command line.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING

from allocator.mc_dev_allocator import VARIANTS

from ..cli import source_type

if TYPE_CHECKING:  # the rest is imported when a soak runs: every mdtui command builds this parser
    from .machine import Machine
    from .report import Report
    from .scenarios import Options, Target

DESCRIPTION = """\
Run the kernel's own tests for the Media Device Allocator API against one shared device
(tools/testing/selftests/media_tests), each with a verdict from evidence:

  media_dev_allocator.sh  unbind/bind each driver; after each step the media nodes, the
                          allocator's refcount and the owner module's refcnt are asserted
  regression_test.txt     media_device_open loops (open, MEDIA_IOC_DEVICE_INFO, close) and a
                          video_device_test loop in parallel with a bind/unbind loop; then
                          rmmod of the owner refused while shared, rmmod allowed, unplug
  media_device_test       an fd kept across the unbind gets EIO; the node returns after bind

Evidence: the simulation's invariants, WARNs and oopses; on a live machine the kernel log
from the start of the soak (/dev/kmsg: KASAN, refcount_t, WARNING, BUG, general protection
faults, lockdep), media nodes left after every driver is gone, module refcnts before vs
after, ioctl errnos other than EIO, ENODEV, ENXIO.  Each failure names the step, the loop
and the evidence.

sources: 'sim' (the default) runs on a simulated default world (the HVR-950Q at 1-1), a
fresh one per scenario; 'live' on this machine (root; it unbinds real drivers, removes their
modules and deauthorizes the USB device, so it asks first unless --yes); 'rig' runs the live
soak inside 'mdtui rig' on the chosen --variant; 'ssh:[USER@]HOST[:PORT]' runs it on
another machine over ssh (nothing installed there: mdtui's agent runs on its python3, 3.8 or
newer, as root, or inside a rig there): the scenarios and the verdict are made here, every
step is made there; it asks first as 'live' does, unless the host is a rig.

examples:
  mdtui soak --variant mainline --race-window 5 --junit soak.xml
  sudo mdtui soak --source live --device media0 --duration 60

exit status: 0 every scenario passed, 1 one failed (or the ssh host could not be reached),
2 the soak could not run (no shared device, not root, refused, --race-window or --read-only
on a live machine).
"""

SOURCES = ("sim", "live", "rig")
SSH = "ssh:"
#: regression_test.txt's bind/unbind loops when neither --loops nor --duration is given
DEFAULT_LOOPS = {"sim": 200, "live": 20}


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
    return value


def _milliseconds(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 10_000:
        raise argparse.ArgumentTypeError(f"must be between 0 and 10000 ms, not {text}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``mdtui soak``."""
    p.add_argument(
        "--source",
        type=source_type(SOURCES, bundle=False),
        default="sim",
        metavar="{sim,live,rig,ssh:[USER@]HOST[:PORT]}",
        help="where to run it (default: sim; ssh:HOST: another machine, over ssh)",
    )
    p.add_argument(
        "--variant",
        choices=VARIANTS,
        help="sim, rig: the allocator design to run: v3, v4 (the 2016 patch), v10 (2019), mainline (the default) "
        "or fixed; live and ssh run the kernel's own",
    )
    p.add_argument(
        "--device",
        metavar="DEVICE",
        help="the shared device, named as 'mdtui dump --device' takes it (default: the first shared one)",
    )
    p.add_argument(
        "--loops",
        type=_positive_int,
        metavar="N",
        help=f"regression_test.txt's bind/unbind loops (default: {DEFAULT_LOOPS['sim']} on sim, "
        f"{DEFAULT_LOOPS['live']} live; unbounded with --duration alone)",
    )
    p.add_argument("--duration", type=_seconds, metavar="S", help="stop those loops after S seconds")
    p.add_argument(
        "--race-window",
        type=_milliseconds,
        default=0.0,
        metavar="MS",
        help="sim only: sleep MS ms between kref_put() dropping to zero and the release taking "
        "media_device_lock (the release:before_lock hook), so mainline's race is hit in seconds",
    )
    p.add_argument("--junit", metavar="FILE", help="also write the verdict as JUnit XML to FILE")
    p.add_argument("--json", action="store_true", help="print the verdict as JSON")
    p.add_argument("--yes", action="store_true", help="live, ssh: do not ask before unbinding real drivers")
    p.add_argument("--read-only", action="store_true", help="refuse to run live (the soak writes to sysfs)")
    p.add_argument("--seed", type=int, metavar="N", help="seed of the bind/unbind loop's timing jitter")


def refuse(message: str) -> int:
    print(f"mdtui soak: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace, out: IO[str]) -> int:
    from . import progress as progress_bar
    from .machine import SimMachine
    from .report import Report, header
    from .scenarios import CannotRun, Soak

    source = args.source
    if args.race_window and source != "sim":
        return refuse(
            "--race-window widens a window inside the simulated kernel; a live kernel's cannot be "
            "widened from user space (use --source sim)"
        )
    if args.read_only and source != "sim":
        return refuse(
            "--read-only: the soak binds and unbinds drivers, removes modules and unplugs the device; "
            "it cannot run read-only"
        )
    if source == "rig":
        return run_in_rig(args)
    options = options_from(args)
    in_rig = os.environ.get("MDTUI_RIG_CONTROL") if source == "live" else None
    report = Report(source, "", "", options, args.race_window)
    try:
        machine = open_machine(args, in_rig)
    except CannotRun as exc:
        report.reason = str(exc)
        return finish(args, out, report, quiet=True)
    except Unreachable as exc:  # as dump says it: the host named, exit status 1
        print(f"mdtui soak: {exc}", file=sys.stderr)
        return 1
    report.source, report.design, report.kernel = machine.source, machine.design, machine.kernel
    if in_rig:
        report.source = "rig"
    try:
        soak = Soak(lambda: SimMachine(machine.design, args.race_window), options, None)
        try:
            report.target = soak.find(machine)
        except (CannotRun, OSError) as exc:  # OSError: a remote machine's snapshot did not come
            report.reason = str(exc)
            return finish(args, out, report, quiet=True)
        # real hardware (live outside a rig, or a host over ssh that is no rig): ask first
        if machine.real and not args.yes and not confirm(machine, report.target):
            report.reason = "not confirmed: nothing was done"
            return finish(args, out, report, quiet=True)
        if not args.json:
            try:
                out.write(header(report))
                out.flush()
            except OSError as exc:  # the output went away (| head) or filled up (/dev/full)
                return _output_failed(exc, out)
        bar = progress_bar.for_stream(sys.stderr)
        soak.progress = bar
        started = time.monotonic()
        try:
            report.results = soak.run(machine)
        except KeyboardInterrupt:
            bar.stop()
            print("mdtui soak: interrupted", file=sys.stderr)
            return 130
        finally:
            bar.stop()
        report.notes += soak.notes
    finally:
        machine.shutdown()
    report.seconds = time.monotonic() - started
    return finish(args, out, report)


def finish(args: argparse.Namespace, out: IO[str], report: Report, quiet: bool = False) -> int:
    """Print the verdict (or why there is none), write the JUnit file; the exit status."""
    from .report import render_json, summary, write_junit

    if report.reason is not None and quiet:
        print(f"mdtui soak: {report.reason}", file=sys.stderr)
    try:
        if args.json:
            out.write(render_json(report))
        elif not quiet:
            out.write(summary(report))
        out.flush()
    except OSError as exc:
        return _output_failed(exc, out)
    if args.junit:
        try:
            write_junit(args.junit, report)
        except OSError as exc:
            name = errno.errorcode.get(exc.errno or 0, "?")
            print(f"mdtui soak: cannot write {args.junit}: {exc.strerror or exc} ({name})", file=sys.stderr)
            return max(report.status, 1)
    return report.status


def _output_failed(exc: OSError, out: IO[str]) -> int:
    from ..cli import output_failed

    return output_failed("soak", exc, out)


def options_from(args: argparse.Namespace) -> Options:
    from .scenarios import Options

    live = args.source != "sim"
    loops = args.loops
    if loops is None and args.duration is None:
        loops = DEFAULT_LOOPS["live" if live else "sim"]
    # on the simulation a think time before each step lets a close land between two of them;
    # a live machine's sysfs writes take long enough on their own
    return Options(
        device=args.device, loops=loops, duration=args.duration, jitter=0.0 if live else 0.001, seed=args.seed
    )


class Unreachable(Exception):
    """The ssh host did not answer (exit status 1, as ``mdtui dump`` says it)."""


def open_machine(args: argparse.Namespace, in_rig: str | None) -> Machine:
    """The machine to run on; ``CannotRun`` when it cannot be this one."""
    from .machine import SimMachine, live_machine, rig_variant
    from .scenarios import CannotRun

    if args.source == "sim":
        return SimMachine(args.variant or "mainline", args.race_window)
    if args.source.startswith(SSH):
        return open_remote(args)
    design = rig_variant() if in_rig else None
    if args.variant is not None and not in_rig:
        raise CannotRun(
            "--variant picks a simulated design; a live machine runs its kernel's own "
            "(use --source sim, or --source rig --variant V)"
        )
    if args.variant is not None and design is not None and args.variant != design:
        raise CannotRun(f"this rig runs the {design} design, not {args.variant}")
    try:
        return live_machine(in_rig, design or args.variant)
    except OSError as exc:  # not root, no kernel log
        raise CannotRun(str(exc.strerror)) from None


def open_remote(args: argparse.Namespace) -> Machine:
    """``--source ssh:HOST``: the agent started there, its ``LiveMachine`` made; ``Unreachable``
    when the host does not answer, ``CannotRun`` when the soak cannot run there (not root,
    no kernel log, --variant on a machine that is no rig)."""
    from ..cli import CONNECT_TIMEOUT
    from ..sources.remote import RemoteSource
    from .remote import RemoteMachine
    from .scenarios import CannotRun

    host = args.source[len(SSH) :]
    source = RemoteSource(host, read_only=False)
    unready = source.ready(CONNECT_TIMEOUT)
    if unready:
        source.stop()
        raise Unreachable(unready[0])
    try:
        machine = RemoteMachine(source)
    except OSError as exc:
        source.stop()
        raise CannotRun(f"{host}: {exc.strerror}") from None
    refusal = None
    if args.variant is not None and not machine.rig:
        refusal = (
            f"--variant picks a simulated design; {host} runs its kernel's own "
            "(use --source sim, or --source rig --variant V)"
        )
    elif args.variant is not None and args.variant != machine.design:
        refusal = f"the rig on {host} runs the {machine.design} design, not {args.variant}"
    if refusal is not None:
        machine.shutdown()
        raise CannotRun(refusal)
    return machine


def confirm(machine: Machine, target: Target, stdin: IO[str] | None = None, stderr: IO[str] | None = None) -> bool:
    """Ask on the terminal before touching real hardware; no terminal: no (say --yes)."""
    stdin = stdin or sys.stdin
    stderr = stderr or sys.stderr
    a, b = target.first, target.second
    what = (
        f"mdtui soak will, on {machine.kernel}: unbind and bind {a.driver} and {b.driver} on USB {target.usb} "
        f"({target.node}, {target.model}) again and again, remove and load the modules {a.module} and "
        f"{b.module} (every device they drive stops meanwhile), and deauthorize and reauthorize USB "
        f"{target.usb} (a disconnect).  Programs using them lose them."
    )
    try:
        tty = stdin.isatty()
    except (AttributeError, ValueError):
        tty = False
    if not tty:
        print(f"{what}\nmdtui soak: not on a terminal: pass --yes to run it without asking", file=stderr)
        return False
    stderr.write(f"{what}\nGo on? [y/N] ")
    stderr.flush()
    answer = stdin.readline().strip().lower()
    return answer in ("y", "yes")


def rig_command(args: argparse.Namespace) -> list[str]:
    """The soak the rig runs: the live one, with the options that carry over."""
    command = ["mdtui", "soak", "--source", "live", "--yes"]
    if args.device is not None:
        command += ["--device", args.device]
    if args.loops is not None:
        command += ["--loops", str(args.loops)]
    if args.duration is not None:
        command += ["--duration", f"{args.duration:g}"]
    if args.seed is not None:
        command += ["--seed", str(args.seed)]
    if args.json:
        command.append("--json")
    if args.junit:
        command += ["--junit", str(Path(args.junit).resolve())]
    return command


def run_in_rig(args: argparse.Namespace) -> int:
    """``--source rig``: become ``mdtui rig --variant V -- python -m mdtui soak --source live
    --yes ...``, whose exit status is the soak's (the rig execs: this returns only when it
    cannot start, 2)."""
    from ..rig import launch

    launch.run(rig_command(args), None, args.variant or "mainline")
    return 2  # it said why it could not start (umockdev missing...)
