"""The rig's control socket (``$MDTUI_RIG_CONTROL``): lines in, one answer line each.

Whatever a client sends, it gets an answer and the rig goes on serving: a line that is not
UTF-8, a line longer than ``MAX_LINE`` bytes (read no further than that: the rest of it is
skipped, not buffered), a handler that raises.  A line cut off by the client going away
(no newline before EOF) is not run: a truncated ``unplug 1-10`` is not ``unplug 1-1``.
Answers are ``ok`` or ``error ERRNO ERRNO_NAME message``, on one line.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator

MAX_LINE = 4096  # bytes, newline included: PATH_MAX, far more than any lifecycle line


def error(code: int, message: str) -> str:
    """An answer line for a refusal: ``error 22 EINVAL message`` (the message on one line)."""
    return f"error {code} {errno.errorcode.get(code, 'EIO')} {' '.join(message.split())}"


def send(path: str, line: str) -> str:
    """One line to the control socket at ``path``; its answer (a client's side: tests,
    benches, the live soak inside the rig)."""
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
        s.sendall(line.encode() + b"\n")
        with s.makefile() as reply:
            return reply.readline().strip()


class TooLong:
    """A line longer than MAX_LINE, skipped up to its newline."""


TOO_LONG = TooLong()


def lines(conn: socket.socket, limit: int = MAX_LINE) -> Iterator[bytes | TooLong]:
    """The complete lines read from ``conn`` (without their newline), never holding more than
    ``limit`` bytes; an over-long line is yielded once as TOO_LONG.  Stops at EOF or when the
    connection fails; a partial last line is dropped."""
    buf = b""
    skipping = False
    while True:
        try:
            chunk = conn.recv(limit)
        except OSError:
            return
        if not chunk:
            return
        buf += chunk
        while True:
            end = buf.find(b"\n")
            if end < 0:
                break
            line, buf = buf[:end], buf[end + 1 :]
            if skipping:
                skipping = False
            elif len(line) >= limit:
                yield TOO_LONG
            else:
                yield line
        if len(buf) >= limit:
            if not skipping:
                yield TOO_LONG
            skipping, buf = True, b""


def answer(handler: Callable[[str], str], raw: bytes | TooLong, limit: int = MAX_LINE) -> str:
    """The answer to one line: the handler's, or the refusal the line or the handler earns."""
    if isinstance(raw, TooLong):
        return error(errno.E2BIG, f"line longer than {limit} bytes")
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return error(errno.EINVAL, f"not UTF-8 text ({exc.reason} at byte {exc.start})")
    try:
        return handler(line.strip())
    except OSError as exc:
        return error(exc.errno or errno.EIO, f"{exc.strerror or exc}")
    except Exception as exc:  # any bug in a handler: answered, never fatal to the socket
        return error(errno.EIO, f"{type(exc).__name__}: {exc}")


class UnixServer:
    """A Unix socket listener at ``path`` (``kind``: ``SOCK_STREAM``, ``SOCK_SEQPACKET``), each
    connection served by ``serve`` on its own thread; a client that goes away ends its own."""

    def __init__(
        self, path: str, serve: Callable[[socket.socket], None], kind: int = socket.SOCK_STREAM, name: str = "control"
    ) -> None:
        self.path = path
        self.closed = False
        self._serve = serve
        self._name = name
        self.listener = socket.socket(socket.AF_UNIX, kind)
        self.listener.bind(path)
        self.listener.listen(64)
        threading.Thread(target=self._accept, name=name, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                if self.closed:
                    return
                time.sleep(0.01)  # EMFILE and the like: the next client may fare better
                continue
            threading.Thread(target=self._run, args=(conn,), name=f"{self._name}-client", daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):  # OSError: the client went away
            self._serve(conn)

    def close(self) -> None:
        """Stop accepting; connections being served finish what they are doing."""
        self.closed = True
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)


class ControlServer(UnixServer):
    """Serves ``handler`` on a Unix socket at ``path``: any number of connections, lines
    answered in order."""

    def __init__(self, handler: Callable[[str], str], path: str) -> None:
        self.handler = handler
        super().__init__(path, self._answer_lines)

    def _answer_lines(self, conn: socket.socket) -> None:
        for raw in lines(conn):
            conn.sendall(answer(self.handler, raw).encode() + b"\n")  # OSError: nobody to answer
