"""Command line: ``mdtui`` (the TUI), ``mdtui watch``, ``mdtui dump``, ``mdtui rig``."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import os
import shlex
import signal
import sys
from collections.abc import Callable, Sequence
from typing import IO

from allocator.catalog import CATALOG
from allocator.mc_dev_allocator import VARIANTS

from . import __version__, logs, tuning
from .commands import LIFECYCLE, Step
from .model import SystemSnapshot
from .script import ScriptError, load
from .sources import Refusal, Source, perform_all
from .sources.sim import build

EPILOG = """\
sources: 'sim' is the simulated kernel (the default world: au0828, snd_usb_audio and uvcvideo
loaded, a Hauppauge HVR-950Q and a UVC webcam plugged; with --script, an empty machine that the
script builds); 'live' reads this machine (sysfs, /dev/media*, udev events; bind/unbind write
to sysfs, which needs root); 'auto' picks live when /sys/bus/media has devices;
'bundle:FILE' shows the state a bug-report bundle recorded (read-only, no events).

bug-report bundle: 'mdtui dump --bundle FILE.tar.gz' writes README.txt, versions, modules,
open files, the kernel log, snapshot.json, per device its text, JSON and DOT, and state.json
(for --source bundle:), e.g.
  sudo mdtui dump --source live --bundle mdtui-report.tar.gz
  mdtui --source bundle:mdtui-report.tar.gz

script lines: {lines} | # comment

catalog names (plug): {catalog}
""".format(lines=" | ".join(f"{c.name} {c.usage}" for c in LIFECYCLE), catalog=", ".join(CATALOG))


RIG_HELP = """\
Run COMMAND inside a umockdev testbed that presents the simulated kernel as this machine:
sysfs (USB devices and interfaces, /sys/bus/media, video/dvb/sound nodes, /sys/module), /dev
nodes, the media ioctls answered from the simulated media devices, a uevent for every change,
and bind/unbind writes that act on the simulation and fail with its errno.  Inside, COMMAND
finds $MDTUI_RIG_CONTROL: a Unix socket that takes lifecycle lines (plug, unplug, ...; or
'reset [SCRIPT]') and answers 'ok' or 'error ERRNO NAME message'.

examples:
  mdtui rig                                   the TUI on the live source, on the rig
  mdtui rig -- media-ctl -p -d /dev/media0
  mdtui rig --script lifecycle.txt -- mdtui dump --source live --format json

needs Debian's umockdev, gir1.2-umockdev-1.0, python3-gi and a C compiler.
"""

WATCH_HELP = """\
Print one line per event until Ctrl-C (or SIGTERM): uevents, module loads and unloads, the
allocator's changes (media0 refcount 2->1, with their cause) and errors, as TIME KIND DEVICE
TEXT; styled on a terminal, plain when piped.  The events that built the world come first.
With --script, the script's steps are made and watched, and it ends after them unless
--follow.

examples:
  mdtui watch --source live
  mdtui watch --source sim --script lifecycle.txt --json
"""

DUMP_HELP = """\
Print the current state once: each media device with the allocator's view (its refcount,
owner module, holders, open files), then its graph.  --format text (the default) is the
allocator's view and media-ctl -p's listing; json is the snapshot as a document for
machines (the schema: mdtui/dump.schema.json); dot is the graph for Graphviz, as media-ctl
--print-dot draws it (--interfaces adds the interface nodes).  --bundle writes all of them
into a bug-report bundle instead.

examples:
  mdtui dump --format json --device media0
  mdtui dump --format dot --device media0 --interfaces | dot -Tsvg > media0.svg
  sudo mdtui dump --source live --bundle mdtui-report.tar.gz
"""


#: Textual's themes (mdtui/theme.py; named here without importing Textual, which only the TUI needs)
THEMES = (
    "ansi-dark", "ansi-light", "atom-one-dark", "atom-one-light", "catppuccin-frappe", "catppuccin-latte",
    "catppuccin-macchiato", "catppuccin-mocha", "dracula", "flexoki", "gruvbox", "monokai", "nord", "rose-pine",
    "rose-pine-dawn", "rose-pine-moon", "solarized-dark", "solarized-light", "textual-dark", "textual-light",
    "tokyo-night",
)  # fmt: skip

VARIANT_HELP = (
    "the simulated allocator's design: the 2016 patch (v3, v4), the 2019 one (v10), mainline (the default), "
    "or fixed (mainline with its release race closed)"
)


#: the subcommands each of whose module holds DESCRIPTION (with two examples),
#: ``add_arguments(parser)`` and ``run(args, out) -> int``
TOOLS = {
    "soak": "run the kernel's allocator tests against one device, with a pass/fail verdict",
    "compare": "run one lifecycle script on each allocator design, step by step, side by side",
    "metrics": "export the media devices as Prometheus metrics (/metrics over HTTP, or a textfile)",
    "serve": "serve the TUI to a web browser (textual-serve; localhost unless --public)",
    "completion": "print a bash, zsh or fish completion script",
    "config": "show the effective configuration and where each value came from",
}


LOG_LEVELS = ("debug", "info", "warning", "error")


class UsageError(Exception):
    pass


SOURCES = ("sim", "live", "auto")
BUNDLE = "bundle:"
SSH = "ssh:"
#: how long ``dump`` and ``soak`` wait for a remote machine's first state
CONNECT_TIMEOUT = 30.0


def source_type(names: tuple[str, ...], bundle: bool) -> Callable[[str], str]:
    """The type of a ``--source`` option: one of ``names``, ssh:[USER@]HOST[:PORT], and
    bundle:FILE if ``bundle`` (argparse's choices cannot say HOST or FILE)."""
    forms = [*names, *(["bundle:FILE"] if bundle else []), "ssh:[USER@]HOST[:PORT]"]

    def check(value: str) -> str:
        if value in names or (bundle and value.startswith(BUNDLE) and value[len(BUNDLE) :]):
            return value
        if value.startswith(SSH):
            from .sources.remote import Target

            try:
                Target(value[len(SSH) :])
            except ValueError as exc:
                raise argparse.ArgumentTypeError(f"{value!r}: {exc}") from None
            return value
        raise argparse.ArgumentTypeError(f"invalid choice: {value!r} (choose {', '.join(forms[:-1])} or {forms[-1]})")

    return check


source_name = source_type(SOURCES, bundle=True)


def _common(p: argparse.ArgumentParser, top: bool = False) -> None:
    """The options of the TUI, ``watch``, ``dump`` and ``metrics``.  A subcommand's leave
    what was given before the subcommand as it is (``mdtui --source ssh:H dump``): their
    defaults are the top parser's only."""

    def default(value: object) -> object:
        return value if top else argparse.SUPPRESS

    p.add_argument(
        "--source",
        type=source_name,
        action="append",
        default=default(None),
        metavar="{sim,live,auto,bundle:FILE,ssh:[USER@]HOST[:PORT]}",
        help="where to read state from (default: auto; bundle:FILE: a bundle made by 'dump --bundle', read-only; "
        "ssh:HOST: a machine over ssh, nothing installed there); give it again for several machines",
    )
    p.add_argument(
        "--script", metavar="FILE", default=default(None), help="run a lifecycle script on the simulated kernel first"
    )
    p.add_argument("--variant", choices=VARIANTS, default=default("mainline"), help=VARIANT_HELP)
    p.add_argument(
        "--read-only", action="store_true", default=default(False), help="live: never write to sysfs (no bind/unbind)"
    )
    p.add_argument(
        "--exact",
        action="store_true",
        default=default(False),
        help="live: follow the allocator's debug lines on /dev/kmsg (root, debugfs)",
    )
    p.add_argument(
        "--config",
        metavar="PATH",
        default=default(None),
        help="the configuration file (default: $MDTUI_CONFIG, else $XDG_CONFIG_HOME/mdtui/config.toml; "
        "'mdtui config --print' shows what it sets)",
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mdtui",
        description="Inspect media devices shared through the Media Device Allocator API.\n\n"
        "examples:\n"
        "  mdtui                                   the TUI on this machine, or the simulated one\n"
        "  mdtui --source sim --script lifecycle.txt\n"
        "  mdtui --source ssh:root@dut --source ssh:lab2 --read-only",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"mdtui {__version__}")
    _common(p, top=True)
    p.add_argument(
        "--theme",
        choices=THEMES,
        metavar="THEME",
        help="the TUI's colours for this run, one of Textual's themes (default: the configuration's theme, else "
        "the one last chosen with the palette's 'Change theme', else textual-dark): " + ", ".join(THEMES),
    )
    p.add_argument(
        "--log",
        metavar="FILE",
        help="append a log to FILE: mdtui's own (sources, updates, actions, errors) and, at --log-level debug, "
        "Textual's",
    )
    p.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default="info",
        help="with --log: debug (everything, Textual's log too), info (the default: connections, actions, "
        "refusals), warning (what went wrong) or error",
    )
    p.add_argument(
        "--dev",
        action="store_true",
        help="send Textual's log, print() and the DOM's events to 'textual console' (pip install textual-dev; "
        "run 'textual console' in another terminal first)",
    )
    sub = p.add_subparsers(dest="command", metavar="{" + ",".join(["watch", "dump", *TOOLS, "rig"]) + "}")
    w = sub.add_parser(
        "watch",
        help="print one line per event until Ctrl-C",
        description=WATCH_HELP,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(w)
    w.add_argument("--json", action="store_true", help="JSON lines instead of text")
    w.add_argument(
        "-f",
        "--follow",
        action="store_true",
        help="with --script: keep watching after the script (the default without one)",
    )
    d = sub.add_parser(
        "dump",
        help="print the current state once",
        description=DUMP_HELP,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(d)
    d.add_argument(
        "--format",
        choices=("text", "json", "dot"),
        help="what to print: text (the default: the allocator's view, then media-ctl -p's listing), json (the "
        "snapshot as a document, mdtui/dump.schema.json) or dot (the graph for Graphviz, as media-ctl --print-dot)",
    )
    d.add_argument(
        "--bundle",
        metavar="FILE",
        help="write a bug-report bundle (a .tar.gz of every format, open files, the kernel log, versions) "
        "to FILE instead of printing; FILE is replaced atomically; not with --format",
    )
    d.add_argument("--interfaces", action="store_true", help="dot: add interface nodes (mc_nextgen_test style)")
    d.add_argument(
        "--device",
        metavar="DEVICE",
        help="only this media device: its node (media0, /dev/media0), bus_info (usb-0000:00:14.0-1), "
        "driver or a piece of its model; exit 2 when that names several",
    )
    import importlib

    for name, summary in TOOLS.items():
        tool = importlib.import_module(f".{name}", __package__)
        tool.add_arguments(
            sub.add_parser(
                name,
                help=summary,
                description=tool.DESCRIPTION,
                formatter_class=argparse.RawDescriptionHelpFormatter,
            )
        )
    r = sub.add_parser(
        "rig",
        help="run COMMAND on a virtual machine: the simulated kernel behind umockdev's /sys, /dev and ioctls",
        description=RIG_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    r.add_argument(
        "--script", metavar="FILE", help="build the machine with this lifecycle script (default world without)"
    )
    r.add_argument("--variant", choices=VARIANTS, default="mainline", help=VARIANT_HELP)
    r.add_argument("rig_command", nargs=argparse.REMAINDER, metavar="-- COMMAND", help="default: the TUI, live source")
    return p


def open_source(args: argparse.Namespace, clock: Callable[[], float] | None) -> tuple[Source, list[Step]]:
    """The source ``--source`` names (several: one ``MultiSource``), and the script's steps."""
    names = args.source or ["auto"]
    if len(names) == 1:
        return _open_one(args, names[0], clock)
    if len(set(names)) < len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise UsageError(f"--source {twice} is given twice")
    if any(n.startswith(BUNDLE) for n in names):
        raise UsageError("a bundle is shown alone: give --source bundle:FILE without other sources")
    if args.script:
        raise UsageError("--script runs on one simulated kernel: give one --source")
    from .sources.multi import MultiSource

    return MultiSource([(_host_name(n), _open_one(args, n, clock)[0]) for n in names]), []


def open_or_say(args: argparse.Namespace, clock: Callable[[], float] | None) -> tuple[Source, list[Step]] | int:
    """``open_source``, or the exit status after saying on stderr why not: 2 for a usage or
    script error, 1 for a bundle that cannot be read."""
    from .sources.bundle import BundleError

    try:
        return open_source(args, clock)
    except (ScriptError, UsageError) as exc:
        print(f"mdtui: {exc}", file=sys.stderr)
        return 2
    except BundleError as exc:
        print(f"mdtui: {exc}", file=sys.stderr)
        return 1


def _host_name(source: str) -> str:
    """How the device list heads a machine: the ssh target as given, or this machine's name."""
    if source.startswith(SSH):
        return source[len(SSH) :]
    import socket

    return "sim" if source == "sim" else socket.gethostname()


def _open_one(args: argparse.Namespace, name: str, clock: Callable[[], float] | None) -> tuple[Source, list[Step]]:
    if name.startswith(SSH):
        if args.script:
            raise UsageError("--script runs on the simulated kernel: use --source sim")
        from .sources.remote import RemoteSource

        return RemoteSource(name[len(SSH) :], read_only=args.read_only, exact=args.exact), []
    if name.startswith(BUNDLE):
        if args.script:
            raise UsageError("--script runs on the simulated kernel; a bundle is read-only: use --source sim")
        if args.command == "watch":
            raise UsageError("a bundle has no events to watch: use 'mdtui dump --source bundle:FILE' or the TUI")
        from .sources.bundle import BundleError, BundleSource

        source = BundleSource(name[len(BUNDLE) :])
        try:  # what no type can say (ids that do not match): shown once here, not crashed on later
            _render_all(source.snapshot())
        except Exception as exc:
            raise BundleError(f"{source.path}: state.json: a state mdtui cannot show ({exc!r})") from None
        return source, []
    steps: list[Step] = load(args.script) if args.script else []
    if name == "live" and args.script:
        raise UsageError("--script runs on the simulated kernel: use --source sim")
    # the live reader is imported only when it is asked for, or to see whether it is needed
    if name == "live" or (name == "auto" and not args.script and _media_devices_here()):
        from .live.monitor import UdevMonitor
        from .sources.live import LiveSource

        return LiveSource(monitor_factory=UdevMonitor, read_only=args.read_only, exact=args.exact), []
    if args.script:
        source, _ = build([], variant=args.variant, clock=clock)
    else:
        source, _ = build(variant=args.variant, clock=clock)
    return source, steps


def _render_all(snap: SystemSnapshot) -> None:
    from .render import dot, jsondump, text

    text.render(snap)
    jsondump.render(snap)
    dot.render(snap, True)


def _media_devices_here() -> bool:
    from .live.sysfs import Sysfs

    return bool(Sysfs().media_devices())


def main(
    argv: Sequence[str] | None = None,
    *,
    clock: Callable[[], float] | None = None,
    stdout: IO[str] | None = None,
) -> int:
    out = stdout or sys.stdout
    p = parser()
    args, extra = p.parse_known_args(argv)
    if extra:  # what parse_args says, and for serve where the TUI's options go
        after = " (the TUI's options go after --, as in: mdtui serve --port 8080 -- --source live)"
        hint = after if args.command == "serve" else ""
        p.error(f"unrecognized arguments: {' '.join(extra)}{hint}")
    args.argv = list(sys.argv[1:] if argv is None else argv)  # as typed: a bundle's README says it
    if out is None and args.command in ("dump", "watch"):  # started with stdout closed (>&-)
        print(f"mdtui {args.command}: no standard output to write to (EBADF)", file=sys.stderr)
        return 1
    if args.dev and args.command is not None:
        print(f"mdtui: --dev connects the TUI to 'textual console': not for 'mdtui {args.command}'", file=sys.stderr)
        return 2
    if args.log is not None or args.dev:
        try:
            for warning in logs.setup(args.log, args.log_level, args.dev):
                print(f"mdtui: {warning}", file=sys.stderr)
        except logs.LogError as exc:
            print(f"mdtui: {exc}", file=sys.stderr)
            return 2
    logs.LOG.info("mdtui %s: %s", __version__, shlex.join(["mdtui", *args.argv]))
    try:
        status = run_command(args, out, clock)
    finally:
        failed = logs.failure()
        if failed is not None:
            print(f"mdtui: {failed}", file=sys.stderr)
    logs.LOG.info("exit status %d", status)
    return status


def run_command(args: argparse.Namespace, out: IO[str], clock: Callable[[], float] | None) -> int:
    """The command ``args`` names, with the configuration file's settings."""
    settings = None
    if args.command in (None, "watch", "dump", "metrics"):  # what the configuration file sets
        from . import config

        loaded = config.load_or_say(args)
        if loaded is None:
            return 2
        settings = config.effective(args, loaded, theme=args.command is None)
        logs.LOG.info("configuration: %s", loaded.path or f"none (looked for it by {loaded.found_by})")
        if not args.source and (loaded.values.keys() & {"sources", "hosts"}):
            args.source = config.sources(settings)
    if args.command in TOOLS:
        import importlib

        tool = importlib.import_module(f".{args.command}", __package__)
        return tool.run(args, out, clock) if args.command == "metrics" else tool.run(args, out)
    if args.command == "rig":
        from .rig import launch

        command = args.rig_command[1:] if args.rig_command[:1] == ["--"] else args.rig_command
        return launch.run(command, args.script, args.variant)
    if args.command == "dump" and args.bundle is not None:
        why = bundle_usage(args)
        if why is not None:
            print(f"mdtui: {why}", file=sys.stderr)
            return 2
    opened = open_or_say(args, clock)
    if isinstance(opened, int):
        return opened
    source, steps = opened
    if args.command == "dump" and args.exact:
        print("mdtui: --exact follows the kernel log as it happens: use it with watch or the TUI", file=sys.stderr)
        return 2
    if args.command in ("dump", "watch"):
        try:
            return (dump if args.command == "dump" else watch)(source, steps, args, out)
        except OSError as exc:  # the output went away (| head) or filled up (/dev/full)
            return output_failed(args.command, exc, out)
    from .app import MdtuiApp  # Textual is imported only for the TUI

    perform_all(source, steps)  # refusals are error events: the event log shows them
    tuning.tune(source)

    def redesign(variant: str) -> Source:
        """The same machine on another allocator design: the script (or the default world) again."""
        return build(steps if args.script else None, variant=variant, clock=clock)[0]

    assert settings is not None
    app = MdtuiApp(
        source,
        redesign=redesign if source.simulated else None,
        theme=settings["theme"].value,  # type: ignore[arg-type]
        confirm=settings["confirm"].value,  # type: ignore[arg-type]
        event_log=settings["event_log"].value,  # type: ignore[arg-type]
        keymap=settings["keymap"].value,  # type: ignore[arg-type]
    )
    logs.LOG.info("the TUI on %s, theme %s", ", ".join(args.source or ["auto"]), app.theme)
    app.run()
    if app.return_code == 1 and app.crash_report is not None:
        print(f"mdtui: crashed; the traceback is above and in {app.crash_report}", file=sys.stderr)
    elif app.return_code == 1:
        print("mdtui: crashed; the traceback is above", file=sys.stderr)
    return app.return_code or 0


def bundle_usage(args: argparse.Namespace) -> str | None:
    """Why ``dump --bundle`` cannot go with the other options given; None when it can."""
    if args.bundle == "-":
        return "--bundle -: name a file (a bundle is written atomically; to a pipe: --bundle /dev/stdout)"
    if not args.bundle:
        return "--bundle: name a file"
    if args.format is not None:
        return "--bundle writes every format (text, JSON and DOT per device): drop --format"
    return None


def output_failed(command: str, exc: OSError, out: IO[str]) -> int:
    """A write to the output failed.  A closed pipe ends quietly, with the status of a
    tool killed by SIGPIPE (141); anything else is named.  Either way the rest of what was
    buffered is dropped, so that exiting does not fail again."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
    if isinstance(exc, BrokenPipeError):
        return 128 + signal.SIGPIPE
    name = errno.errorcode.get(exc.errno or 0, "?")
    print(f"mdtui {command}: cannot write the output: {exc.strerror or exc} ({name})", file=sys.stderr)
    return 1


def report(script: str | None, refused: list[Refusal]) -> int:
    """Name each refused step on stderr; the exit status: 1 when the kernel refused one."""
    for step, exc in refused:
        name = errno.errorcode.get(exc.errno or 0, "?")
        logs.LOG.warning("%s:%d: %s: refused: %s: %s", script, step.line, step, name, exc.strerror)
        print(f"mdtui: {script}:{step.line}: {step}: refused: {name}: {exc.strerror}", file=sys.stderr)
    return 1 if refused else 0


def dump(source: Source, steps: list[Step], args: argparse.Namespace, out: IO[str]) -> int:
    from .render import dot, jsondump, text

    unready = source.ready(CONNECT_TIMEOUT)
    for why in unready:  # a machine that did not answer: said, and the others are shown
        print(f"mdtui dump: {why}", file=sys.stderr)
    if unready and not any(h.state == "connected" for h in source.snapshot().hosts):
        source.stop()
        return 1
    refused = perform_all(source, steps)
    snap = source.snapshot()
    source.stop()
    if args.device is not None:
        from .selection import Ambiguous, NoSuchDevice, describe, select

        try:
            chosen = select(snap, args.device)
        except NoSuchDevice as exc:
            print(f"mdtui: {exc}", file=sys.stderr)
            return 1
        except Ambiguous as exc:
            print(f"mdtui: {exc}; name one of them:", file=sys.stderr)
            for dev in exc.candidates:
                print(f"  {describe(dev)}", file=sys.stderr)
            return 2
        snap = dataclasses.replace(snap, media_devices=(chosen,))
    if args.bundle is not None:
        return dump_bundle(source, snap, refused, args)
    if args.format == "json":
        out.write(jsondump.render(snap, refused))
    elif args.format == "dot":
        out.write(dot.render(snap, args.interfaces))
    else:
        out.write(text.render(snap))
    return max(report(args.script, refused), 1 if unready else 0)


def dump_bundle(source: Source, snap: SystemSnapshot, refused: list[Refusal], args: argparse.Namespace) -> int:
    """Write the bundle (mdtui/bundle.py); one line on stderr says what was written (the
    output stays empty: ``--bundle /dev/stdout | ssh ...`` carries the archive alone)."""
    from . import bundle

    command = shlex.join(["mdtui", *getattr(args, "argv", ["dump", "--bundle", args.bundle])])
    try:
        files = bundle.write_bundle(args.bundle, source, snap, refused, command=command, interfaces=args.interfaces)
    except OSError as exc:
        print(f"mdtui: cannot write {args.bundle}: {bundle.error_text(exc)}", file=sys.stderr)
        return 1
    n = len(snap.media_devices)
    print(f"mdtui: wrote {args.bundle}: {len(files)} files, {n} media device{'' if n == 1 else 's'}", file=sys.stderr)
    return report(args.script, refused)


def watch(source: Source, steps: list[Step], args: argparse.Namespace, out: IO[str]) -> int:
    from .watch import Printer, Watch, event_text

    printer = Printer(out, args.json, None if out is sys.stdout else False)
    w = Watch(source, printer)
    refused: list[Refusal] = []
    ended_by: list[int] = []

    def end(signum: int, _frame: object) -> None:  # SIGTERM, SIGHUP: stop as Ctrl-C does, cleanly
        ended_by.append(signum)
        w.stop()

    previous = {signum: signal.signal(signum, end) for signum in (signal.SIGTERM, signal.SIGHUP)}
    try:
        for e in source.history():  # what happened before we subscribed: the world's setup
            printer.line(e.time, e.kind, e.device, event_text(e), e.seq)
        refused = w.run_script(steps)
        if (args.follow or not args.script) and not ended_by:
            w.follow()
    except KeyboardInterrupt:
        pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        w.close()
    return 128 + ended_by[0] if ended_by else report(args.script, refused)


if __name__ == "__main__":
    raise SystemExit(main())
