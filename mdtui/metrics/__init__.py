"""``mdtui metrics``: a Prometheus exporter of the media devices a source shows.

The families are made in ``families.py`` (pure, from one snapshot), kept current by the
pipeline in ``exporter.py``, which also serves them over HTTP or writes node_exporter's
textfile; ``soakfile.py`` reads a soak report.  This module is the command line; it imports
prometheus_client only when it runs (every mdtui command builds this parser).
"""

from __future__ import annotations

import argparse
import errno
import signal
import socket
import sys
import threading
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when it runs: every mdtui command builds this parser
    from ..commands import Step
    from .exporter import Exporter, Textfile

DESCRIPTION = """\
Export what a source shows as Prometheus metrics: per media device its registration, the
allocator's refcount, its owner module's refcnt, its holders by state, the files open on its
nodes and its anomalies (labels device, bus_info, driver, model, host); per host the media
devices, whether it is connected and the uevents seen; with --soak-report, the verdict of
the last 'mdtui soak --json'.  Values the source does not know are left out, not exported
as 0.  Either serves /metrics over HTTP (--listen) or writes DIR/mdtui.prom for
node_exporter's textfile collector (--textfile), replaced atomically on every change.
SIGTERM or Ctrl-C stops it (exit status 0).  The source is this machine (live) unless
--source says otherwise: give it several times (ssh:HOST...) for one exporter of many.

examples:
  mdtui metrics --source live --read-only --listen 0.0.0.0:9105
  mdtui metrics --source live --read-only --textfile /var/lib/node_exporter/textfile --once
"""

#: --once: how long to wait for a remote machine's first state
CONNECT_TIMEOUT = 30.0
#: --textfile with --soak-report: how often the report is looked at again (seconds); nothing
#: announces that a cron job rewrote it
SOAK_POLL = 5.0


def listen_address(text: str) -> tuple[str, int]:
    """``ADDR:PORT`` → (ADDR, PORT): ``127.0.0.1:9105``, ``[::1]:9105``, ``:9105`` (every
    IPv4 address), ``localhost:9105``; PORT 0 picks a free one."""
    host, sep, port = text.rpartition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected ADDR:PORT (127.0.0.1:9105, [::1]:9105, :9105), not {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise argparse.ArgumentTypeError(f"put an IPv6 address in brackets: [{host}]:{port}")
    if not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"not a port number (0-65535): {port!r}")
    return host or "0.0.0.0", int(port)


def address_text(host: str, port: int) -> str:
    """(ADDR, PORT) as ``ADDR:PORT``, an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``mdtui metrics``: the common ones (--source...), then its own."""
    from ..cli import _common

    _common(p)
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument(
        "--listen",
        type=listen_address,
        metavar="ADDR:PORT",
        help="serve /metrics over HTTP on ADDR:PORT (127.0.0.1:9105, [::1]:9105, :9105 for every IPv4 address)",
    )
    mode.add_argument(
        "--textfile",
        metavar="DIR",
        help="write DIR/mdtui.prom for node_exporter's textfile collector, replaced atomically on every change",
    )
    p.add_argument("--once", action="store_true", help="--textfile: write it once and exit (cron, tests)")
    p.add_argument(
        "--soak-report",
        metavar="FILE",
        help="also export the verdict of the soak report in FILE (what 'mdtui soak --json > FILE' wrote)",
    )
    p.add_argument(
        "--host-label",
        metavar="NAME",
        help="the host label of this machine's series (default: its hostname)",
    )


def _error_name(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):
        names = {getattr(socket, n): n for n in dir(socket) if n.startswith("EAI_")}
        return names.get(exc.errno, "?")
    return errno.errorcode.get(exc.errno or 0, "?")


def fail(message: str, exc: OSError | None = None) -> int:
    """Say why on stderr; exit status 1."""
    why = f": {exc.strerror or exc} ({_error_name(exc)})" if exc is not None else ""
    print(f"mdtui metrics: {message}{why}", file=sys.stderr)
    return 1


def once(exporter: Exporter, textfile: Textfile, steps: list[Step], script: str | None) -> int:
    """``--textfile DIR --once``: wait for remote machines' first state (one that does not
    answer is exported as down, and named on stderr), run the script, write, stop."""
    from ..cli import report
    from .exporter import TextfileError

    try:
        for why in exporter.source.ready(CONNECT_TIMEOUT):
            print(f"mdtui metrics: {why}", file=sys.stderr)
        status = report(script, exporter.run_script(steps))
        exporter.settle()
        try:
            textfile.update()
        except TextfileError as exc:
            return fail(f"cannot write {exc.path}", exc.error)
        return status
    finally:
        exporter.source.stop()


def run(args: argparse.Namespace, out: IO[str], clock: Callable[[], float] | None = None) -> int:
    """Export until a signal (0), or once with --once; 1 when it cannot listen or write,
    2 on a usage error."""
    from ..cli import open_or_say, report

    if args.once and args.listen is not None:
        print("mdtui metrics: --once writes the textfile once; with --listen use --textfile DIR", file=sys.stderr)
        return 2
    if not args.source and not args.script:  # an exporter shows this machine, never a made-up one
        args.source = ["live"]
    opened = open_or_say(args, clock)
    if isinstance(opened, int):
        return opened
    source, steps = opened

    from .exporter import Exporter, Server, Textfile, TextfileError
    from .families import local_host_label
    from .soakfile import SoakFile

    soak = SoakFile(args.soak_report).read if args.soak_report else None
    exporter = Exporter(source, local_host_label(), soak, args.host_label)
    server: Server | None = None
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for ending in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            previous[ending] = signal.signal(ending, lambda _signum, _frame: exporter.stop())
    try:
        if args.listen is not None:
            host, port = args.listen
            where = address_text(host, port)
            try:
                server = Server(host, port, exporter.registry)
            except OSError as exc:
                return fail(f"cannot listen on {where}", exc)
            print(f"mdtui metrics: serving http://{address_text(*server.address)}/metrics", file=sys.stderr)
        textfile = Textfile(args.textfile, exporter.render) if args.textfile is not None else None
        if textfile is not None and args.once:
            return once(exporter, textfile, steps, args.script)
        report(args.script, exporter.run_script(steps))  # refused steps: named on stderr; it goes on
        try:
            poll = SOAK_POLL if textfile is not None and soak is not None else None
            exporter.follow(textfile.update if textfile is not None else lambda: None, poll)
        except TextfileError as exc:
            return fail(f"cannot write {exc.path}", exc.error)
        except OSError as exc:  # the source's monitors
            return fail("the source failed", exc)
        return 0
    finally:
        for ending, handler in previous.items():
            signal.signal(ending, handler)
        if server is not None:
            server.close()
        exporter.close()
