"""``mdtui serve``: its options, the addresses it refuses without --public, a port in use,
the TUI's arguments passed through, and the server itself (a real socket, a websocket per
page, the served mdtui ended with its page and with serve) on the simulated kernel.

The browser test (Debian's chromium, driven by Playwright) is tests/rig/test_browser.py."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from mdtui import serve
from mdtui.cli import main, parser

#: seconds for serve to say where it listens, for a served mdtui to draw or to end
WAIT = 15.0


def parse(*argv: str) -> object:
    return parser().parse_args(["serve", *argv])


# --- options --------------------------------------------------------------------------------


def test_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    args = parse()
    assert (args.host, args.port, args.public, args.tui_args) == ("127.0.0.1", 8000, False, [])  # type: ignore[attr-defined]
    with pytest.raises(SystemExit):
        parse("--help")
    shown = " ".join(capsys.readouterr().out.split())
    assert "(default: 127.0.0.1)" in shown and "(default: 8000; 0 picks a free one" in shown


def test_options_and_the_tui_arguments_after_the_double_dash() -> None:
    args = parse("--host", "::1", "--port", "0", "--public", "--", "--source", "live", "--read-only")
    assert (args.host, args.port, args.public) == ("::1", 0, True)  # type: ignore[attr-defined]
    assert serve.tui_arguments(args) == ["--source", "live", "--read-only"]  # type: ignore[arg-type]


@pytest.mark.parametrize("port", ["70000", "x", "-1", "80.5"])
def test_port_must_be_a_port_number(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse("--port", port)
    assert exc.value.code == 2
    assert "not a port number (0-65535)" in capsys.readouterr().err


def test_the_options_given_before_serve_are_the_tuis_too() -> None:
    argv = ["--source", "sim", "--variant", "v3", "serve", "--port", "0", "--", "--theme", "nord"]
    args = parser().parse_args(argv)
    args.argv = argv
    assert serve.tui_arguments(args) == ["--source", "sim", "--variant", "v3", "--theme", "nord"]


def test_the_subcommand_is_found_after_options_that_take_the_word_serve_as_a_value() -> None:
    argv = ["--config", "serve", "--theme", "nord", "serve", "--port", "0"]
    args = parser().parse_args(argv)
    args.argv = argv
    assert serve.tui_arguments(args) == ["--config", "serve", "--theme", "nord"]


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("127.0.0.1:8000", "127.0.0.1"),
        ("[::1]:8000", "::1"),
        ("LocalHost", "localhost"),
        ("vm:8000", "vm"),
        ("[", None),
        ("evil.com\\@127.0.0.1", None),
        ("a b:80", None),
        ("host:port", None),
        ("127.0.0.1:99999", None),
        ("LOCALHOST.", "localhost"),
        ("[::1%lo]", None),
        ("[::1%1]:80", None),
        ("", None),
    ],
)
def test_host_name_takes_name_and_port_and_nothing_else(header: str, name: str | None) -> None:
    assert serve.host_name(header) == name


def test_the_served_command_is_this_python_running_mdtui() -> None:
    assert serve.served_command(["--source", "live"]) == [sys.executable, "-m", "mdtui", "--source", "live"]


@pytest.mark.parametrize(
    ("tui_args", "why"),
    [
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--source", "nope"], "invalid choice: 'nope'"),
        (["dump"], "'dump' is a subcommand: the served program is the TUI"),
        (["--dev"], "--dev"),
    ],
)
def test_arguments_the_tui_would_refuse_are_refused_before_listening(
    tui_args: list[str], why: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:  # were it to listen, it would say EADDRINUSE
        port = busy.getsockname()[1]
        assert main(["serve", "--port", str(port), "--", *tui_args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mdtui serve: the TUI's arguments ({' '.join(tui_args)}): ") and why in err
    assert "EADDRINUSE" not in err


def test_description_ends_with_examples() -> None:
    text, _, examples = serve.DESCRIPTION.rstrip("\n").rpartition("\nexamples:\n")
    assert "--public" in text and "no password" in text
    lines = examples.splitlines()
    assert len(lines) >= 2 and all(line.startswith("  mdtui serve") for line in lines)


def test_building_the_parser_does_not_import_textual_serve() -> None:
    """Every mdtui command builds the parser: ``mdtui dump`` stays fast."""
    code = "\n".join(
        [
            "import sys",
            "from mdtui.cli import parser",
            "parser()",
            "print(sorted({'textual_serve', 'aiohttp'} & {*sys.modules}))",
        ]
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- where it listens -----------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "10.0.0.7", "fe80::1"])
def test_an_address_other_machines_reach_is_refused_without_public(
    host: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--host", host, "--port", "8123"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert (
        f"refusing to listen on {serve.address_text(host, 8123)}, an address other machines can reach: whoever" in err
    )
    assert "bind drivers as" in err and "no password and no TLS" in err and "give --public" in err


def test_a_name_that_resolves_to_another_machine_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def getaddrinfo(host: str, *args: object, **kwargs: object) -> list[tuple[object, ...]]:
        assert host == "labbox"
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.5", 0)),
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", 0, 0, 0)),
        ]

    monkeypatch.setattr(serve.socket, "getaddrinfo", getaddrinfo)
    assert main(["serve", "--host", "labbox"]) == 2
    assert (
        "refusing to listen on labbox:8000 (192.0.2.5), an address other machines can reach" in capsys.readouterr().err
    )


def test_a_name_that_does_not_resolve_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--host", "no-such-host.invalid"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mdtui serve: cannot resolve --host no-such-host.invalid: ") and "(EAI_" in err


@pytest.mark.parametrize(
    ("host", "addresses"),
    [
        ("127.0.0.1", {"127.0.0.1"}),
        ("::1", {"::1"}),
        ("localhost", {"127.0.0.1"}),
        ("127.0.0.53", {"127.0.0.53"}),
    ],
)
def test_loopback_addresses_are_accepted(host: str, addresses: set[str]) -> None:
    found = serve.resolve(host)
    assert {a for _, a in found} >= addresses  # localhost: ::1 too, where /etc/hosts says so
    assert serve.refusal(host, 8000, found) is None
    sockets = serve.bind(found, 0)
    try:
        assert len({s.getsockname()[1] for s in sockets}) == 1  # port 0: one port for every address
    finally:
        for s in sockets:
            s.close()


def test_is_loopback() -> None:
    assert all(serve.is_loopback(a) for a in ("127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"))
    assert not any(serve.is_loopback(a) for a in ("0.0.0.0", "::", "192.168.0.1", "::ffff:10.0.0.1", "localhost"))


def test_a_port_in_use_is_one_line_naming_the_address_and_eaddrinuse(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 1
    assert capsys.readouterr().err == (
        f"mdtui serve: cannot listen on 127.0.0.1:{port}: Address already in use (EADDRINUSE)\n"
    )


# --- serving: a real server on the simulated kernel -------------------------------------------


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            if entry.name.isdigit() and int((entry / "stat").read_text().rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def gone(pid: int, within: float = WAIT) -> bool:
    """Whether ``pid`` ends (or is a zombie) within ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if (Path("/proc") / str(pid) / "stat").read_text().rpartition(")")[2].split()[0] == "Z":
                return True
        except OSError:
            return True
        time.sleep(0.02)
    return False


@dataclass
class Serving:
    process: subprocess.Popen[str]
    line: str
    url: str

    def stop(self) -> tuple[int, str]:
        """SIGTERM; serve's exit status and stderr."""
        self.process.send_signal(signal.SIGTERM)
        _, err = self.process.communicate(timeout=WAIT)
        return self.process.returncode, err


@contextlib.contextmanager
def serving(*serve_args: str, before: tuple[str, ...] = ()) -> Iterator[Serving]:
    """``mdtui [BEFORE] serve --port 0 SERVE_ARGS`` running; killed afterwards, with every
    mdtui it started."""
    process = subprocess.Popen(
        [sys.executable, "-m", "mdtui", *before, "serve", "--port", "0", *serve_args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    started: set[int] = set()
    try:
        ready, _, _ = select.select([process.stdout], [], [], WAIT)
        assert ready, "mdtui serve said nothing"
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r" at (http://\S+) ", line)
        assert match, f"no URL in {line!r}; stderr: {process.stderr.read() if process.poll() is not None else ''}"
        yield Serving(process, line, match.group(1))
    finally:
        started.update(children(process.pid))
        if process.poll() is None:
            process.kill()
        process.wait()
        for pid in started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


async def first_screen(ws: aiohttp.ClientWebSocketResponse, wanted: bytes = b"Media devices") -> bytes:
    """What the served mdtui draws until ``wanted`` is in it."""
    seen = b""
    deadline = time.monotonic() + WAIT
    while wanted not in re.sub(rb"\x1b\[[0-9;?]*[a-zA-Z]", b"", seen):
        message = await ws.receive(timeout=max(0.1, deadline - time.monotonic()))
        assert message.type == aiohttp.WSMsgType.BINARY, message
        seen += message.data
    return seen


async def closing(ws: aiohttp.ClientWebSocketResponse) -> aiohttp.WSMsgType:
    """The first message after what the served mdtui drew (the page's "Session ended": CLOSE)."""
    while True:
        message = await ws.receive(timeout=WAIT)
        if message.type != aiohttp.WSMsgType.BINARY:
            return message.type


def get(url: str, host: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_it_serves_the_page_on_a_loopback_address_and_stops_on_sigterm(host: str) -> None:
    with serving("--host", host, "--", "--source", "sim") as s:
        port = int(s.url.rsplit(":", 1)[1].rstrip("/"))
        assert s.line == f"mdtui serve: serving mdtui --source sim at {s.url} (Ctrl-C stops)\n"
        assert s.url == f"http://{serve.address_text(host, port)}/"
        status, page = get(s.url)
        assert status == 200 and 'class="textual-terminal"' in page
        assert f'data-session-websocket-url="ws://{serve.address_text(host, port)}/ws"' in page
        assert get(f"{s.url}static/js/textual.js")[0] == 200
        assert s.stop() == (0, "")


def test_public_serves_every_address_and_says_what_that_exposes() -> None:
    with serving("--host", "0.0.0.0", "--public", "--", "--source", "sim") as s:
        port = int(s.url.rsplit(":", 1)[1].rstrip("/"))
        assert s.url == f"http://{socket.gethostname()}:{port}/"
        status, page = get(f"http://127.0.0.1:{port}/", host=f"lab-screen.example:{port}")
        assert status == 200  # any Host: --public serves whatever name the network uses
        assert f'data-session-websocket-url="ws://lab-screen.example:{port}/ws"' in page  # not ws://0.0.0.0
        status, err = s.stop()
        assert status == 0
        assert err.startswith(f"mdtui serve: --public: {s.url} is open to other machines: whoever can reach it")
        assert "no password and no TLS" in err


def test_another_host_name_and_another_sites_websocket_are_refused() -> None:
    """Without --public the Host must be loopback (DNS rebinding), and a websocket that a
    page of another site opens is refused (the TUI's actions are not for any page)."""
    with serving("--", "--source", "sim") as s:
        port = int(s.url.rsplit(":", 1)[1].rstrip("/"))
        status, text = get(s.url, host=f"rebound.example:{port}")
        assert status == 403 and "not served to Host rebound.example" in text

        async def connect(origin: str) -> int:
            async with aiohttp.ClientSession() as session:
                try:
                    async with session.ws_connect(f"{s.url}ws", headers={"Origin": origin}) as ws:
                        await first_screen(ws)
                        return 101
                except aiohttp.WSServerHandshakeError as exc:
                    return exc.status

        assert asyncio.run(connect("http://evil.example")) == 403
        assert asyncio.run(connect(s.url.rstrip("/"))) == 101
        status, text = get(s.url, host="[")  # no host at all: refused, not a traceback
        assert status == 400 and "names no host" in text
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as raw:
            raw.sendall(b"GET / HTTP/1.1\r\n\r\n")  # no Host: aiohttp logs its traceback
            assert raw.recv(100).startswith(b"HTTP/1.")
        status, err = s.stop()
        assert status == 0 and "Traceback" not in err, err


def test_the_host_name_it_was_given_is_served() -> None:
    """``--host NAME`` for a name that resolves to loopback: the URL it prints works."""
    name = next(n for n in (socket.gethostname(), "localhost") if serve.is_loopback(socket.gethostbyname(n)))
    with serving("--host", name, "--", "--source", "sim") as s:
        assert get(s.url)[0] == 200, s.url
        assert s.stop()[0] == 0


def test_more_pages_than_max_sessions_are_refused() -> None:
    with serving("--", "--source", "sim") as s:

        async def open_pages(n: int) -> list[int]:
            async with aiohttp.ClientSession() as session:
                statuses, sockets = [], []
                for _ in range(n):
                    try:
                        sockets.append(await session.ws_connect(f"{s.url}ws"))
                        statuses.append(101)
                    except aiohttp.WSServerHandshakeError as exc:
                        statuses.append(exc.status)
                for ws in sockets:
                    await ws.close()
                return statuses

        assert asyncio.run(open_pages(serve.MAX_SESSIONS + 1)) == [101] * serve.MAX_SESSIONS + [503]
        assert s.stop()[0] == 0


def test_the_tuis_arguments_reach_the_served_mdtui() -> None:
    with serving("--", "--source", "sim", "--theme", "nord", before=("--variant", "v3")) as s:

        async def run() -> list[str]:
            async with aiohttp.ClientSession() as session, session.ws_connect(f"{s.url}ws?width=120&height=40") as ws:
                screen = await first_screen(ws, b"allocator: v3")
                assert b"WinTV HVR-950Q" in screen
                (app,) = children(s.process.pid)
                return Path(f"/proc/{app}/cmdline").read_bytes().decode().split("\0")[:-1]

        argv = asyncio.run(run())
        assert argv == [sys.executable, "-m", "mdtui", "--variant", "v3", "--source", "sim", "--theme", "nord"]
        assert s.line.startswith("mdtui serve: serving mdtui --variant v3 --source sim --theme nord at ")


@pytest.mark.parametrize("ending", ["the page closes", "SIGTERM", "SIGINT", "SIGKILL"])
def test_the_served_mdtui_ends_with_its_page_and_with_serve(ending: str) -> None:
    with serving("--", "--source", "sim") as s:

        async def run() -> None:
            async with aiohttp.ClientSession() as session:
                ws = await session.ws_connect(f"{s.url}ws")
                await first_screen(ws)
                (app,) = children(s.process.pid)
                if ending == "the page closes":
                    await ws.close()
                    assert await asyncio.to_thread(gone, app), "the mdtui of a closed page is still running"
                    assert s.process.poll() is None
                    return
                s.process.send_signal(getattr(signal, ending))
                assert await asyncio.to_thread(gone, app), f"the served mdtui outlived serve's {ending}"
                assert await asyncio.to_thread(gone, s.process.pid)
                if ending != "SIGKILL":
                    assert await closing(ws) in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)

        asyncio.run(run())
        if ending in ("SIGTERM", "SIGINT"):
            assert s.process.wait(WAIT) == 0


def test_an_mdtui_that_cannot_start_ends_its_session(tmp_path: Path) -> None:
    """The page says "Session ended" (its websocket closes), serve says why and carries on."""
    with serving("--", "--source", f"bundle:{tmp_path / 'missing.tar.gz'}") as s:

        async def run() -> aiohttp.WSMsgType:
            async with aiohttp.ClientSession() as session, session.ws_connect(f"{s.url}ws") as ws:
                return await closing(ws)

        assert asyncio.run(run()) in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert s.process.poll() is None
        status, err = s.stop()
        assert status == 0 and "Application failed to start" in err


def test_the_tuis_options_before_the_double_dash_are_refused_with_a_hint(capsys: pytest.CaptureFixture[str]) -> None:
    from mdtui.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["serve", "--port", "0", "--source", "sim"])
    assert exc.value.code == 2
    assert "unrecognized arguments: --source (the TUI's options go after --, as in: " in capsys.readouterr().err
