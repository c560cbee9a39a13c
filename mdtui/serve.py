"""``mdtui serve``: the TUI in a web browser, through textual-serve.

textual-serve's web server gives every browser that opens the page (a websocket) an mdtui
of its own, run as a subprocess under Textual's web driver, whose screen xterm.js draws in
the page.  This module is the command line, and what it changes in textual-serve:

* the served command is this interpreter running ``-m mdtui`` (from a virtualenv and from
  an installed wheel alike), with the TUI options given before ``serve`` and those after
  ``--``, checked by mdtui's own parser before anything listens;
* it listens on sockets bound here, on loopback addresses only unless ``--public`` is
  given: a port in use is one line naming the address and EADDRINUSE; port 0 picks one;
* the page's websocket address is the one the browser used (textual-serve writes the
  listening address into the page: ``0.0.0.0`` is no address a colleague can reach);
* a websocket from another site's page is refused (a page the user visits elsewhere could
  otherwise drive the TUI on localhost; without --public, the Host header must name a
  loopback address, which also stops DNS rebinding);
* an mdtui that does not quit when its page goes away is ended (SIGTERM, then SIGKILL),
  each runs in its own session (Ctrl-C is serve's, which then ends them in order) and
  dies with serve (PR_SET_PDEATHSIG) if serve is killed outright (textual-serve's were
  left running: Textual's web driver carries on when its input ends);
* a page whose mdtui fails to start or dies says "Session ended" (textual-serve's stayed
  blank, its websocket open).

textual-serve and aiohttp are imported only when it runs: every mdtui command builds this
parser.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import ipaddress
import logging
import os
import re
import shlex
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:  # imported when it runs
    from aiohttp import web

DEFAULT_HOST = "127.0.0.1"
#: textual-serve's own default
DEFAULT_PORT = 8000
#: seconds an mdtui gets to quit once its page is gone (or serve stops) before SIGTERM, and
#: again before SIGKILL
STOP_GRACE = 3.0
#: pages served at once (each runs an mdtui): a client that opens more is refused (503)
MAX_SESSIONS = 16
#: the websocket's ping interval (seconds): a browser that vanished without closing its
#: connection (a cable pulled) is noticed after twice this
HEARTBEAT = 15.0

DESCRIPTION = """\
Serve the TUI to web browsers (textual-serve): every browser that opens the page gets an
mdtui of its own, run by this Python as this user with the options given after -- (and
those given before 'serve'), drawn in the page by xterm.js; closing the page ends it.  For
a lab screen, or a colleague without a terminal.  It listens on 127.0.0.1 unless --host
says otherwise, and refuses an address other machines can reach unless --public is given:
whoever reaches it then gets the TUI with all its actions (on a live source, unbind and
bind drivers as the user running serve), with no password and no TLS.  SIGTERM or Ctrl-C
stops it and every mdtui it started (exit status 0).

examples:
  mdtui serve
  mdtui serve --port 8080 -- --source live --read-only
  mdtui serve --host 0.0.0.0 --public -- --source sim
"""


class ServeError(Exception):
    """Why it cannot serve: said on stderr, with the exit ``status``."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def port_number(text: str) -> int:
    """``--port``: 0-65535 (0 picks a free port)."""
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"not a port number (0-65535): {text!r}")
    return int(text)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``mdtui serve``; what follows ``--`` is the served TUI's."""
    p.add_argument(
        "--host",
        default=DEFAULT_HOST,
        metavar="HOST",
        help=f"the address to listen on (default: {DEFAULT_HOST}); a name listens on every address it resolves "
        "to (localhost: 127.0.0.1 and ::1); one other machines can reach needs --public",
    )
    p.add_argument(
        "--port",
        type=port_number,
        default=DEFAULT_PORT,
        metavar="PORT",
        help=f"the port to listen on (default: {DEFAULT_PORT}; 0 picks a free one, printed)",
    )
    p.add_argument(
        "--public",
        action="store_true",
        help="allow a HOST other machines can reach (0.0.0.0, ::, a LAN address): whoever reaches it gets the TUI "
        "and its actions (bind/unbind on a live source, as this user), with no password and no TLS",
    )
    p.add_argument(
        "tui_args",
        nargs=argparse.REMAINDER,
        metavar="-- MDTUI_ARGS",
        help="the served TUI's options (mdtui --help), e.g. -- --source live --read-only",
    )


# --- what is served ------------------------------------------------------------------------


def _before_serve(argv: Sequence[str]) -> list[str]:
    """The options typed before ``serve`` (``mdtui --source live serve``): the TUI's too.
    The subcommand is the first ``serve`` after options that parse whole (``--config serve
    serve``: the first is --config's value)."""
    argv = list(argv)
    for i, word in enumerate(argv):
        if word == "serve" and check_tui_arguments(argv[:i]) is None:
            return argv[:i]
    return []


def tui_arguments(args: argparse.Namespace) -> list[str]:
    """The served mdtui's arguments: those given before ``serve``, then those after ``--``."""
    after = list(args.tui_args)
    if after[:1] == ["--"]:
        after = after[1:]
    return _before_serve(getattr(args, "argv", [])) + after


class _ParseError(Exception):
    pass


def check_tui_arguments(tui_args: Sequence[str]) -> str | None:
    """Why mdtui would not start the TUI with ``tui_args`` (an unknown option, a bad value,
    a subcommand); None when it would."""
    from .cli import TOOLS, parser

    def error(message: str) -> None:
        raise _ParseError(message)

    p = parser()
    p.error = error  # type: ignore[method-assign]
    try:
        with contextlib.redirect_stdout(sys.stderr):  # --help, --version: not served
            served = p.parse_args(list(tui_args))
    except _ParseError as exc:
        return str(exc)
    except SystemExit:  # a subcommand's parser said why, or --help/--version printed
        return "not options of the TUI"
    if served.command is not None:
        commands = ", ".join(["watch", "dump", *TOOLS, "rig"])
        return f"'{served.command}' is a subcommand: the served program is the TUI ({commands} are not served)"
    if served.dev:
        return "--dev connects to 'textual console' on a terminal: not for a served TUI"
    return None


def served_command(tui_args: Sequence[str]) -> list[str]:
    """The command each browser's mdtui runs: this interpreter, ``-m mdtui`` and ``tui_args``."""
    return [sys.executable, "-m", "mdtui", *tui_args]


# --- where it listens ----------------------------------------------------------------------


def address_text(host: str, port: int) -> str:
    """(ADDR, PORT) as ``ADDR:PORT``, an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def host_name(header: str) -> str | None:
    """The name in a Host header, without its port (``[::1]:8000`` → ``::1``); None when
    it is no ``NAME[:PORT]`` or ``[IPv6][:PORT]``."""
    found = re.fullmatch(r"(?:\[([0-9A-Fa-f:.]+)\]|([^\s\[\]:/\\@%]+))(?::(\d{1,5}))?", header)
    if found is None or (found[3] is not None and int(found[3]) > 65535):
        return None
    name = (found[1] or found[2]).lower()
    return name[:-1] if name.endswith(".") and len(name) > 1 else name  # localhost. is localhost


def is_loopback(address: str) -> bool:
    """Whether only this machine can reach ``address`` (127.0.0.0/8, ::1, ::ffff:127.x)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def _error_name(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):
        names = {getattr(socket, n): n for n in dir(socket) if n.startswith("EAI_")}
        return names.get(exc.errno, "?")
    return errno.errorcode.get(exc.errno or 0, "?")


def _why(exc: OSError) -> str:
    return f"{exc.strerror or exc} ({_error_name(exc)})"


Address = tuple[socket.AddressFamily, str]


def resolve(host: str) -> list[Address]:
    """The addresses ``host`` names, in the resolver's order, without repeats; a name that
    does not resolve is a ``ServeError`` (status 2) naming it and the resolver's error."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise ServeError(f"cannot resolve --host {host}: {_why(exc)}", 2) from None
    found: dict[Address, None] = {}
    for family, _, _, _, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            found[(family, str(sockaddr[0]))] = None
    if not found:
        raise ServeError(f"--host {host}: no IPv4 or IPv6 address", 2)
    return list(found)


def _user() -> str:
    import pwd

    uid = os.getuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def exposure() -> str:
    """What serving beyond this machine exposes."""
    return (
        "whoever can reach it gets the TUI with its actions (on a live source, unbind and bind drivers "
        f"as {_user()}, the user running serve), with no password and no TLS"
    )


def refusal(host: str, port: int, addresses: Sequence[Address]) -> str | None:
    """Why listening on ``addresses`` needs --public (one other machines can reach); None
    when they are all loopback."""
    outside = [a for _, a in addresses if not is_loopback(a)]
    if not outside:
        return None
    where = address_text(host, port) + ("" if outside == [host] else f" ({', '.join(outside)})")
    return (
        f"refusing to listen on {where}, an address other machines can reach: {exposure()}; "
        "give --public to serve it anyway"
    )


def bind(addresses: Sequence[Address], port: int) -> list[socket.socket]:
    """A listening socket on each address, all on ``port`` (0: the first picks one, the
    others take the same).  A ``ServeError`` (status 1) names the address and the errno."""
    sockets: list[socket.socket] = []
    try:
        for family, address in addresses:
            at = port or (sockets[0].getsockname()[1] if sockets else 0)
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            # a port the last run left in TIME_WAIT is free again; one a server listens on is not
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and len(addresses) > 1:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind((address, at))
                sock.listen(128)
            except OSError as exc:
                raise ServeError(f"cannot listen on {address_text(address, at)}: {_why(exc)}", 1) from None
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def page_url(host: str, sockets: Sequence[socket.socket]) -> str:
    """The address to open, on the port listened on: the host as given, or for a wildcard
    (0.0.0.0, ::), which no browser can open, this machine's name."""
    port = sockets[0].getsockname()[1]
    if host in ("0.0.0.0", "::"):
        host = socket.gethostname()
    return f"http://{address_text(host, port)}/"


# --- serving --------------------------------------------------------------------------------


def _die_with_parent() -> Callable[[], None]:
    """A ``preexec_fn`` that makes the child get SIGTERM when serve dies (PR_SET_PDEATHSIG):
    a served mdtui reads its keys from a pipe, and Textual's web driver carries on when that
    pipe ends.  The C function is looked up here, before the fork."""
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def child() -> None:
        prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # serve died before that
            os.kill(os.getpid(), signal.SIGTERM)

    return child


def _make_server(argv: list[str], public: bool, names: frozenset[str]) -> Any:
    """textual-serve's ``Server`` serving ``argv``, with the changes the module's docstring lists."""
    from aiohttp import web
    from textual_serve.app_service import AppService
    from textual_serve.server import Server, to_int

    preexec = _die_with_parent()

    class MdtuiAppService(AppService):
        """One browser's mdtui: ``argv`` without a shell, in its own session, ended for sure."""

        _stopping: asyncio.Task[None] | None = None

        async def _open_app_process(self, width: int = 80, height: int = 24) -> asyncio.subprocess.Process:
            self._process = process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=self._build_environment(width=width, height=height),
                start_new_session=True,
                preexec_fn=preexec,
            )
            assert process.stdin is not None
            self._stdin = process.stdin
            return process

        async def stop(self) -> None:
            """Ask the app to quit; SIGTERM it after ``STOP_GRACE``, SIGKILL after as long
            again; return once it has ended (textual-serve's waits for ever)."""
            if self._stopping is None:
                self._stopping = asyncio.ensure_future(self._stop())
            await asyncio.shield(self._stopping)

        async def _stop(self) -> None:
            process, task = self._process, self._task
            if process is None:
                return
            with contextlib.suppress(Exception):
                await self._download_manager.cancel_app_downloads(app_service_id=self.app_service_id)
            if process.returncode is None:
                await self.send_meta({"type": "quit"})
            for ending in (None, process.terminate, process.kill):
                if ending is not None:
                    with contextlib.suppress(ProcessLookupError):
                        ending()
                try:
                    await asyncio.wait_for(process.wait(), STOP_GRACE)
                    break
                except TimeoutError:
                    continue
            if task is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(task), STOP_GRACE)
            self._task = None

    class MdtuiServer(Server):
        """Serves ``argv``; keeps its app services to end them when it stops."""

        def __init__(self) -> None:
            super().__init__(shlex.join(argv), title="mdtui")
            self.services: set[MdtuiAppService] = set()

        async def on_startup(self, app: web.Application) -> None:
            """Nothing: textual-serve prints a banner here; ``run`` prints one line."""

        async def _make_app(self) -> web.Application:
            app = await super()._make_app()
            app.middlewares.append(self.same_origin)
            return app

        @web.middleware
        async def same_origin(self, request: web.Request, handler: Any) -> web.StreamResponse:
            """Refuse a request whose Host is not loopback (without --public: DNS rebinding),
            and a websocket opened by another site's page (its Origin is not this server)."""
            host = host_name(request.host)
            if host is None:
                raise web.HTTPBadRequest(text=f"mdtui serve: a Host header that names no host: {request.host!r}\n")
            if not public and host not in names and not is_loopback(host):
                raise web.HTTPForbidden(text=f"mdtui serve: not served to Host {request.host} (not a loopback name)\n")
            origin = request.headers.get("Origin")
            if request.path == "/ws" and origin is not None and urlsplit(origin).netloc.lower() != request.host.lower():
                raise web.HTTPForbidden(text=f"mdtui serve: a websocket from {origin} is refused (another site)\n")
            return await handler(request)

        async def handle_index(self, request: web.Request) -> web.StreamResponse:
            """textual-serve's page, with the addresses the browser used."""
            import aiohttp_jinja2

            base = f"{request.scheme}://{request.host}"
            ws = ("wss:" if request.scheme == "https" else "ws:") + f"//{request.host}"
            router = request.app.router
            context = {
                "font_size": to_int(request.query.get("fontsize", "16"), 16),
                "app_websocket_url": ws + str(router["websocket"].url_for()),
                "config": {"static": {"url": base + str(router["static"].url_for(filename="/")).rstrip("/") + "/"}},
                "application": {"name": self.title},
            }
            return aiohttp_jinja2.render_template("app_index.html", request, context)

        async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
            """A browser connected: its own mdtui until either side goes away."""
            if len(self.services) >= MAX_SESSIONS:
                raise web.HTTPServiceUnavailable(
                    text=f"mdtui serve: {MAX_SESSIONS} pages are open already, each with an mdtui of its own\n"
                )
            websocket = web.WebSocketResponse(heartbeat=HEARTBEAT)
            width = to_int(request.query.get("width", "80"), 80)
            height = to_int(request.query.get("height", "24"), 24)
            await websocket.prepare(request)
            service = MdtuiAppService(
                self.command,
                write_bytes=websocket.send_bytes,
                write_str=websocket.send_str,
                close=websocket.close,
                download_manager=self.download_manager,
            )
            self.services.add(service)
            messages: asyncio.Future[None] | None = None
            try:
                await service.start(width, height)
                messages = asyncio.ensure_future(self._process_messages(websocket, service))
                # until the browser goes or the app ends (textual-serve waits for the browser:
                # a page whose mdtui failed to start stayed blank, its websocket open)
                assert service._task is not None
                await asyncio.wait([messages, service._task], return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                pass
            finally:
                if messages is not None:
                    messages.cancel()
                    with contextlib.suppress(Exception, asyncio.CancelledError):  # ValueError: a message not JSON
                        await messages
                await service.stop()
                self.services.discard(service)
                await websocket.close()
            return websocket

        async def stop_all(self) -> None:
            """End every served mdtui (their pages show "Session ended")."""
            await asyncio.gather(*(service.stop() for service in list(self.services)), return_exceptions=True)

    return MdtuiServer()


async def serve(
    sockets: Sequence[socket.socket], argv: list[str], public: bool, names: frozenset[str], ready: Callable[[], None]
) -> None:
    """Serve ``argv`` on ``sockets`` until SIGTERM, SIGINT or SIGHUP; call ``ready`` once
    listening.  On the way out every served mdtui is ended.  ``names``: the host names a
    request may use besides loopback addresses (localhost, the --host given)."""
    from aiohttp import web

    server = _make_server(argv, public, names)
    runner = web.AppRunner(await server._make_app(), access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    sites = [web.SockSite(runner, sock) for sock in sockets]
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    endings = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    for ending in endings:
        loop.add_signal_handler(ending, stopped.set)
    try:
        for site in sites:
            await site.start()
        ready()
        await stopped.wait()
    finally:  # another signal meanwhile changes nothing: the mdtuis are being ended
        for site in sites:
            with contextlib.suppress(Exception):
                await site.stop()
        await server.stop_all()
        await runner.cleanup()
        for ending in endings:
            loop.remove_signal_handler(ending)


def run(args: argparse.Namespace, out: IO[str]) -> int:
    """Serve until a signal (0); 2 for a usage error or an address that needs --public, 1
    when it cannot listen."""
    # aiohttp logs a malformed request with its traceback: any local program could fill
    # serve's terminal with them; the client gets its 400 either way
    logging.getLogger("aiohttp.server").addHandler(logging.NullHandler())
    logging.getLogger("aiohttp.server").propagate = False
    tui_args = tui_arguments(args)
    why = check_tui_arguments(tui_args)
    if why is not None:
        print(f"mdtui serve: the TUI's arguments ({' '.join(tui_args)}): {why}", file=sys.stderr)
        return 2
    try:
        addresses = resolve(args.host)
        refused = refusal(args.host, args.port, addresses)
        if refused is not None and not args.public:
            raise ServeError(refused, 2)
        sockets = bind(addresses, args.port)
    except ServeError as exc:
        print(f"mdtui serve: {exc}", file=sys.stderr)
        return exc.status
    argv = served_command(tui_args)
    url = page_url(args.host, sockets)
    if refused is not None:
        print(f"mdtui serve: --public: {url} is open to other machines: {exposure()}", file=sys.stderr)

    def ready() -> None:
        shown = " ".join(["mdtui", *tui_args])
        print(f"mdtui serve: serving {shown} at {url} (Ctrl-C stops)", file=out, flush=True)

    try:
        names = frozenset({"localhost", args.host.lower()})
        asyncio.run(serve(sockets, argv, args.public, names, ready))
    except KeyboardInterrupt:  # Ctrl-C before it listened: nothing was served
        pass
    finally:
        for sock in sockets:
            sock.close()
    return 0
