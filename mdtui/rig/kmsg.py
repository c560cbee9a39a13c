"""The simulated kernel's log as ``/dev/kmsg``, and its dynamic debug as debugfs'
``dynamic_debug/control``, for the programs inside the rig.

What a program sees (the shim, ``shim.c``, connects an ``open()`` of those two paths to the
sockets served here):

* ``/dev/kmsg``: every ``printk`` of the simulation (its TRACE events: ``dev_dbg``,
  ``dev_info``, ``dev_warn``, ``dev_err``, ``pr_info``, ``pr_err``) as one record,
  ``PRIO,SEQ,USEC,-;TEXT\\n`` with `` SUBSYSTEM=`` and `` DEVICE=`` lines for a device's
  message, as ``devkmsg_read()`` formats it: TEXT is ``dev_printk()``'s ``usb 1-1: ...``,
  escaped as the kernel escapes it (``\\xNN`` for control bytes, bytes above 126 and the
  backslash), USEC the simulation's clock, SEQ counting the records from 0.  A ``dev_dbg``
  is a record only while its call site prints (below), with the prefix its ``m f s l t``
  flags add.  A fresh reader starts at the oldest record kept; ``lseek(fd, 0, SEEK_END)``
  moves it past the newest, ``SEEK_SET`` and ``SEEK_DATA`` to the oldest (nothing clears
  the log here); each ``read()`` returns one record, EINVAL when the buffer is too small for
  it, EAGAIN (O_NONBLOCK) when none is left, EPIPE once when records the reader had not
  read were dropped.  The buffer is bounded as 6.x's printk ring is by default
  (``LOG_BUF_SHIFT`` 17: 128 KiB of text, 4,096 records): the oldest records are dropped.
  ``write()`` logs a line as ``devkmsg_write()`` does (``<N>`` prefix, facility LOG_USER
  unless one is given, at most 1,024 bytes, else EINVAL) with ``printk.devkmsg=on``: no
  rate limit.
* ``/sys/kernel/debug/dynamic_debug/control``: the listing of the simulated kernel's
  ``dev_dbg`` call sites (``SITES``: the modules loaded, in load order after the built-in
  ones) with their flags, rewritten after every change; a ``write()`` is a batch of queries
  (``file mc-dev-allocator.c +p``, ``module mc line 79 -p``, ``func __media_device_get
  =pmf``...) parsed and applied as ``ddebug_exec_queries()`` does: EINVAL for a query it
  cannot parse (the others of the batch still apply), E2BIG over 4,095 bytes, a query that
  matches nothing is no error.  A module loaded again starts with its sites off.

Each rig machine has its own log and its own call sites: ``reset`` boots a new one (a file
opened on the old log stays open and gets nothing more, as a file on a device of the old
machine gets EIO).

The protocol on the sockets (``SOCK_SEQPACKET``: one message per record, so the socket is
readable exactly when a record is there and one ``recv`` is one record): the shim's own
messages start with ``MAGIC``; the first is ``open MODE`` (``r``, ``w`` or ``rw``), answered
``opened``.  Then, from the shim: ``seek set|end|data`` (answered ``seeked``, after which only
records from the new position come), ``sync ID`` from a non-blocking read that found the
socket empty (answered ``none ID`` only if no record is left to send: otherwise the next
record is the answer), ``write DATA`` on the control socket (answered ``ok`` or ``error
ERRNO``); from the rig, ``epipe`` before the records that follow a drop.  A message that is
not the shim's is data written through stdio, which the shim cannot see: applied all the
same, a refusal printed on the rig's stderr (it cannot be returned).  ``/dev/kmsg`` writes
that the shim sees go through the control socket (``kmsg-write HEX``) so that write()
returns the kernel's answer.

This module runs in the rig's server and imports nothing of GObject: the tests use it too.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import select
import socket
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from allocator.events import MODULE, TRACE, UEVENT, Event

from .control import UnixServer

MAGIC = b"\0mdtui-rig\0"
SYNC = b"\0sync "  # a sync request waiting in a reader's replies (never sent as such)

#: syslog levels, by the simulation's event levels (KERN_DEBUG...)
LEVELS = {"emerg": 0, "alert": 1, "crit": 2, "err": 3, "warn": 4, "notice": 5, "info": 6, "debug": 7}
DEFAULT_MESSAGE_LOGLEVEL = 4  # CONFIG_MESSAGE_LOGLEVEL_DEFAULT: a write() without <N>
LOG_USER = 1  # the facility of a write() that names none (facility 0 is the kernel's)
RECORD_MAX = 1024  # PRINTKRB_RECORD_MAX: the longest write() /dev/kmsg takes
QUERY_MAX = 4095  # USER_BUF_PAGE - 1: the longest write() dynamic_debug/control takes
LOG_BUF_SHIFT = 17  # CONFIG_LOG_BUF_SHIFT's default: 128 KiB of text
DEBUGFS = "/sys/kernel/debug"
CONTROL = f"{DEBUGFS}/dynamic_debug/control"
KMSG_DEVT = (1, 11)  # /dev/kmsg: mem major, minor 11
#: what a call site's flags may hold, in the order the listing shows them (6.2+: ``s``)
FLAG_CHARS = "pmfslt"
#: the socket's send buffer per reader (the kernel doubles it): keeps the records on their
#: way to a reader few, so that records a reader has not read are dropped from the log as
#: the kernel drops them, not kept in a socket
READER_SNDBUF = 4096


@dataclass(frozen=True)
class CallSite:
    """One ``dev_dbg()`` of the simulated kernel, as ``struct _ddebug`` has it."""

    filename: str  # as the listing shows it: relative to the source tree
    lineno: int
    module: str  # KBUILD_MODNAME
    function: str
    format: str  # with its "\n"

    @property
    def pattern(self) -> re.Pattern[str]:
        """What the simulation's text for this site looks like (its format, filled in)."""
        return _format_pattern(self.format)


def _format_pattern(fmt: str) -> re.Pattern[str]:
    out = []
    for part in re.split(r"(%[-+ #0]*\d*(?:l|ll|z|h)?[sdiux])", fmt.removesuffix("\n")):
        if not part.startswith("%"):
            out.append(re.escape(part))
        elif part.endswith("s"):
            out.append(".*")
        elif part.endswith("x"):
            out.append("[0-9a-fA-F]+")
        else:
            out.append(r"-?\d+")
    return re.compile("".join(out), re.DOTALL)


ALLOCATOR = "drivers/media/mc/mc-dev-allocator.c"
#: the simulated kernel's dev_dbg() call sites.  mc-dev-allocator.c's are mainline's, line
#: for line (the file is the same from 5.2 to 6.12); the others' files, functions and formats
#: are mainline's, their line numbers those of no particular release.
SITES: tuple[CallSite, ...] = (
    CallSite("drivers/base/dd.c", 587, "dd", "call_driver_probe", "probe with driver %s rejects match %d\n"),
    CallSite("drivers/media/mc/mc-device.c", 732, "mc", "__media_device_register", "Media device registered\n"),
    CallSite("drivers/media/mc/mc-device.c", 817, "mc", "media_device_unregister", "Media device unregistered\n"),
    CallSite(ALLOCATOR, 47, "mc", "media_device_instance_release", "%s: releasing Media Device\n"),
    CallSite(ALLOCATOR, 79, "mc", "__media_device_get", "%s: module %s got owner reference\n"),
    CallSite(ALLOCATOR, 92, "mc", "__media_device_get", "%s: Allocated media device for owner %s\n"),
    CallSite(ALLOCATOR, 128, "mc", "media_device_delete", "%s: module %s put owner module reference\n"),
    CallSite("sound/usb/card.c", 248, "snd_usb_audio", "snd_usb_create_streams", "%d:%d: skipping, already claimed\n"),
)
#: what is built into every simulated kernel (drivers/base): its sites are always listed
ALWAYS_BUILTIN = frozenset({"dd"})


class QueryError(Exception):
    """A query ``ddebug_exec_query()`` refuses (EINVAL)."""


def _wildcard(pattern: str) -> re.Pattern[str]:
    """``match_wildcard()``: ``*`` and ``?``, nothing else special."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), re.DOTALL)


def _unescape(arg: str) -> str:
    """``string_unescape_inplace(UNESCAPE_SPACE | UNESCAPE_OCTAL | UNESCAPE_SPECIAL)``."""
    simple = {"n": "\n", "t": "\t", "r": "\r", "f": "\f", "v": "\v", '"': '"', "\\": "\\", "a": "\a", "e": "\x1b"}

    def one(m: re.Match[str]) -> str:
        s = m.group(1)
        return chr(int(s, 8) & 0xFF) if s[0] in "01234567" else simple.get(s, m.group(0))

    return re.sub(r"\\([0-7]{1,3}|.)", one, arg, flags=re.DOTALL)


def _lineno(text: str) -> int:
    if text == "":
        return 0
    if not re.fullmatch(r"\+?\d+", text) or int(text) > 0xFFFFFFFF:
        raise QueryError(f"bad line-number: {text}")
    return int(text)


@dataclass
class Query:
    filename: str | None = None
    function: str | None = None
    module: str | None = None
    format: str | None = None
    klass: str | None = None
    first: int = 0
    last: int = 0
    set_: set[str] = field(default_factory=set)

    def once(self, keyword: str) -> None:
        if keyword in self.set_:
            raise QueryError(f"match-spec: {keyword} used 2x")
        self.set_.add(keyword)

    def lines(self, spec: str) -> None:
        """``parse_linerange()``: ``N``, ``N-M``, ``N-`` (to the end)."""
        self.once("line")
        first, dash, last = spec.partition("-")
        self.first = _lineno(first)
        if dash:
            self.last = _lineno(last) or 0xFFFFFFFF
            if self.last < self.first:
                raise QueryError(f"last-line:{self.last} < 1st-line:{self.first}")
        else:
            self.last = self.first

    def matches(self, site: CallSite) -> bool:
        if self.klass is not None:
            return False  # no site of the simulated kernel belongs to a class
        if self.module is not None and not _wildcard(self.module).fullmatch(site.module):
            return False
        if self.filename is not None:
            pattern = _wildcard(self.filename)
            if not (pattern.fullmatch(site.filename) or pattern.fullmatch(site.filename.rsplit("/", 1)[-1])):
                return False
        if self.function is not None and not _wildcard(self.function).fullmatch(site.function):
            return False
        if self.format is not None:
            if self.format.startswith("^"):
                if not site.format.startswith(self.format[1:]):
                    return False
            elif self.format not in site.format:
                return False
        if self.first and site.lineno < self.first:
            return False
        return not (self.last and site.lineno > self.last)


def tokenize(text: str, maxwords: int = 9) -> list[str]:
    """``ddebug_tokenize()``: words split on white space or quoted, ``#`` starts a comment."""
    words: list[str] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i].isspace():
            i += 1
        if i >= n or text[i] == "#":
            break
        if text[i] in "\"'":
            end = text.find(text[i], i + 1)
            if end < 0:
                raise QueryError(f"unclosed quote: {text[i + 1 :]}")
            word, i = text[i + 1 : end], end + 1
        else:
            end = i
            while end < n and not text[end].isspace():
                end += 1
            word, i = text[i:end], end
        if len(words) == maxwords:
            raise QueryError(f"too many words, legal max <={maxwords}")
        words.append(word)
    return words


def parse_flags(word: str) -> tuple[str, set[str]]:
    """``ddebug_parse_flags()``: an operation (``+``, ``-``, ``=``) and the flags."""
    if not word or word[0] not in "+-=":
        raise QueryError(f"bad flag-op {word[:1]}, at start of {word}")
    flags = set()
    for c in word[1:]:
        if c == "_":
            continue
        if c not in FLAG_CHARS:
            raise QueryError(f"unknown flag '{c}'")
        flags.add(c)
    return word[0], flags


def parse_query(words: list[str]) -> Query:
    """``ddebug_parse_query()``: keyword and value pairs."""
    if len(words) % 2:
        raise QueryError("expecting pairs of match-spec <value>")
    q = Query()
    for keyword, arg in zip(words[::2], words[1::2], strict=True):
        if keyword == "func":
            q.once("func")
            q.function = arg
        elif keyword == "file":
            q.once("file")
            name, colon, tail = arg.partition(":")
            q.filename = name
            if colon:
                if tail[:1].isalpha() or tail[:1] in ("*", "?"):
                    q.once("func")
                    q.function = tail
                else:
                    q.lines(tail)
        elif keyword == "module":
            q.once("module")
            q.module = arg
        elif keyword == "format":
            q.once("format")
            q.format = _unescape(arg)
        elif keyword == "line":
            q.lines(arg)
        elif keyword == "class":
            q.once("class")
            q.klass = arg
        else:
            raise QueryError(f'unknown keyword "{keyword}"')
    return q


class DynamicDebug:
    """The call sites of the modules loaded (and the built-in ones) and their flags.  Not
    thread-safe: ``KernelLog`` guards it."""

    def __init__(self, builtin: Iterable[str] = (), sites: tuple[CallSite, ...] = SITES) -> None:
        self.sites = sites
        self.flags: dict[CallSite, set[str]] = {}
        self._order: list[str] = []  # modules listed, built-in first, then in load order
        for module in [*sorted(ALWAYS_BUILTIN), *sorted(set(builtin) - ALWAYS_BUILTIN)]:
            self.load(module)

    def load(self, module: str) -> None:
        """A module's sites appear, off (``dyndbg=`` module parameters are not emulated)."""
        if module in self._order:
            return
        self._order.append(module)
        for site in self.sites:
            if site.module == module:
                self.flags[site] = set()

    def unload(self, module: str) -> None:
        if module in self._order:
            self._order.remove(module)
        for site in [s for s in self.flags if s.module == module]:
            del self.flags[site]

    def listing(self) -> str:
        """What reading the control file shows."""
        rows = ["# filename:lineno [module]function flags format"]
        for module in self._order:
            for site in (s for s in self.sites if s.module == module):
                shown = "".join(c for c in FLAG_CHARS if c in self.flags[site]) or "_"
                fmt = site.format.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")
                fmt = fmt.replace("\r", "\\r").replace('"', '\\"')
                rows.append(f'{site.filename}:{site.lineno} [{site.module}]{site.function} ={shown} "{fmt}"')
        return "\n".join(rows) + "\n"

    def site(self, text: str) -> CallSite | None:
        """The listed site whose format printed ``text`` (a dev_dbg's message)."""
        for site in self.flags:
            if site.pattern.fullmatch(text):
                return site
        return None

    def write(self, data: bytes) -> int:
        """One ``write()`` of queries (``ddebug_proc_write``): the byte count, or OSError."""
        if not data:
            return 0
        if len(data) > QUERY_MAX:
            raise OSError(errno.E2BIG, f"expected <{QUERY_MAX + 1} bytes into control")
        text = data.split(b"\0", 1)[0].decode("latin-1")
        failed: list[str] = []
        for query in re.split(r"[;\n]", text):
            query = query.lstrip()
            if not query or query.startswith("#"):
                continue
            try:
                self._execute(query)
            except QueryError as exc:
                failed.append(f"{query!r}: {exc}")
        if failed:
            raise OSError(errno.EINVAL, "; ".join(failed))
        return len(data)

    def _execute(self, text: str) -> int:
        words = tokenize(text)
        if not words:
            raise QueryError("tokenize failed")
        op, flags = parse_flags(words[-1])
        query = parse_query(words[:-1])
        found = 0
        for site, now in self.flags.items():
            if not query.matches(site):
                continue
            found += 1
            if op == "=":
                now.clear()
                now.update(flags)
            elif op == "+":
                now.update(flags)
            else:
                now.difference_update(flags)
        return found


def escape(data: bytes) -> bytes:
    """``msg_add_ext_text()``: control bytes, bytes above 126 and the backslash as \\xNN."""
    return b"".join(b"\\x%02x" % c if c < 0x20 or c >= 0x7F or c == 0x5C else bytes((c,)) for c in data)


@dataclass(frozen=True)
class Record:
    seq: int
    data: bytes  # what read() returns
    cost: int  # its bytes in the printk ring's text area


class KernelLog:
    """One machine's printk ring: records in, readers served from it."""

    def __init__(
        self,
        now: Callable[[], float],
        builtin: Iterable[str] = (),
        shift: int = LOG_BUF_SHIFT,
    ) -> None:
        self.now = now
        self.lock = threading.Lock()
        self.records: deque[Record] = deque()
        self.first_seq = 0  # the oldest record kept (== next_seq when none is)
        self.next_seq = 0
        self.size, self.max_records = 1 << shift, 1 << (shift - 5)  # text bytes; descriptors
        self.used = 0
        self.dyndbg = DynamicDebug(builtin)
        self._devices: dict[str, tuple[str, str]] = {}  # name -> SUBSYSTEM, DEVICE
        self._wake: set[int] = set()  # the readers' pipes

    # -- in ----------------------------------------------------------------------------

    def replay(self, history: Iterable[Event]) -> None:
        """What the machine logged before the rig subscribed (its boot)."""
        for event in history:
            self.event(event)

    def event(self, event: Event) -> None:
        """The simulation's event bus subscriber: quick, never calls into the kernel."""
        if event.kind == UEVENT:
            self._device(event.fields)
        elif event.kind == MODULE:
            with self.lock:
                if event.fields.get("ACTION") == "load":
                    self.dyndbg.load(event.fields.get("MODULE", event.device))
                elif event.fields.get("ACTION") == "unload":
                    self.dyndbg.unload(event.fields.get("MODULE", event.device))
        elif event.kind == TRACE:
            self._printk(event)

    def _device(self, env: Mapping[str, str]) -> None:
        """Remember what a device's messages carry (``dev_printk_info``): its subsystem, and
        its number (``c189:1``) or ``+SUBSYSTEM:NAME``."""
        name = env.get("DEVPATH", "").rsplit("/", 1)[-1]
        subsystem = env.get("SUBSYSTEM", "")
        if not name or not subsystem:
            return
        major, minor = env.get("MAJOR", "0"), env.get("MINOR", "0")
        if major.isdigit() and int(major):
            device = f"{'b' if subsystem == 'block' else 'c'}{major}:{minor}"
        else:
            device = f"+{subsystem}:{name}"
        with self.lock:
            self._devices[name] = (subsystem, device)

    def _printk(self, event: Event) -> None:
        level = LEVELS.get(event.level, DEFAULT_MESSAGE_LOGLEVEL)
        drv, _, name = event.device.partition(" ")
        text = f"{event.device}: {event.text}" if event.device else event.text
        with self.lock:
            if event.level == "debug":
                site = self.dyndbg.site(event.text) if event.device else None
                flags = self.dyndbg.flags.get(site) if site is not None else None
                if site is None or flags is None or "p" not in flags:
                    return
                text = _prefix(site, flags) + text
            info = self._devices.get(name) if name and drv else None
            dictionary = (("SUBSYSTEM", info[0]), ("DEVICE", info[1])) if info is not None else ()
            self._append(level, text.encode("utf-8", "surrogateescape"), int(event.time * 1_000_000), dictionary)

    def write(self, data: bytes) -> int:
        """``devkmsg_write()``: the byte count, or OSError."""
        if len(data) > RECORD_MAX:
            raise OSError(errno.EINVAL, f"a /dev/kmsg record is at most {RECORD_MAX} bytes")
        line = data.split(b"\0", 1)[0]
        level, facility = DEFAULT_MESSAGE_LOGLEVEL, LOG_USER
        m = re.match(rb"<(\d*)>", line)
        if m is not None:
            u = int(m.group(1) or b"0") & 0xFFFFFFFF
            level = u & 7
            if (u >> 3) & 0xFF:
                facility = (u >> 3) & 0xFF
            line = line[m.end() :]
        if line.endswith(b"\n"):
            line = line[:-1]
        with self.lock:
            self._append(facility << 3 | level, line, int(self.now() * 1_000_000), ())
        return len(data)

    def _append(self, prio: int, text: bytes, usec: int, dictionary: tuple[tuple[str, str], ...]) -> None:
        """Callers hold ``lock``."""
        seq = self.next_seq
        body = b"".join(b" %s=%s\n" % (k.encode(), escape(v.encode())) for k, v in dictionary)
        data = b"%d,%d,%d,-;%s\n%s" % (prio, seq, usec, escape(text), body)
        cost = (8 + len(text) + 7) // 8 * 8  # the data block: an id and the text, aligned
        while self.records and (self.used + cost > self.size or len(self.records) >= self.max_records):
            self.used -= self.records.popleft().cost
        self.records.append(Record(seq, data, cost))
        self.used += cost
        self.next_seq = seq + 1
        self.first_seq = self.records[0].seq
        for w in list(self._wake):
            with contextlib.suppress(OSError):  # full: the reader has been woken already
                os.write(w, b"\0")

    # -- out ---------------------------------------------------------------------------

    def record(self, seq: int) -> Record | None:
        """Callers hold ``lock``."""
        if seq < self.first_seq or seq >= self.next_seq:
            return None
        return self.records[seq - self.first_seq]

    def listen(self, w: int) -> None:
        with self.lock:
            self._wake.add(w)

    def unlisten(self, w: int) -> None:
        with self.lock:
            self._wake.discard(w)

    def listing(self) -> str:
        with self.lock:
            return self.dyndbg.listing()

    def control_write(self, data: bytes) -> int:
        with self.lock:
            return self.dyndbg.write(data)


def _prefix(site: CallSite, flags: set[str]) -> str:
    """``__dynamic_emit_prefix()``: what the ``t m f s l`` flags put before the message (the
    thread: the rig's, which ran the simulated code)."""
    out = f"[{threading.get_native_id()}] " if "t" in flags else ""
    parts = [
        site.module if "m" in flags else "",
        site.function if "f" in flags else "",
        site.filename if "s" in flags else "",
        str(site.lineno) if "l" in flags else "",
    ]
    shown = "".join(f"{p}:" for p in parts if p)
    return out + (f"{shown} " if shown else "")


# -- the sockets ---------------------------------------------------------------------------


def _say(message: str) -> None:
    print(f"mdtui rig: {message}", file=sys.stderr)


def _errno_name(code: int) -> str:
    return errno.errorcode.get(code, str(code))


def seqpacket_server(path: str, serve: Callable[[socket.socket], None]) -> UnixServer:
    """A ``SOCK_SEQPACKET`` listener at ``path``: one message per record, as kmsg reads."""
    return UnixServer(path, serve, socket.SOCK_SEQPACKET, f"seqpacket {os.path.basename(path)}")


def _hello(conn: socket.socket) -> str | None:
    """The shim's first message, ``open MODE``: the mode, or None."""
    first = conn.recv(256)
    if not first.startswith(MAGIC + b"open "):
        return None
    mode = first[len(MAGIC) + 5 :].decode("ascii", "replace")
    return mode if mode in ("r", "w", "rw") else None


class Reader:
    """One open /dev/kmsg: the position of its next record, and what the shim is owed."""

    def __init__(self, log: KernelLog, mode: str) -> None:
        self.log = log
        self.reads = "r" in mode
        self.writes = "w" in mode
        with log.lock:
            self.seq = log.first_seq  # devkmsg_open(): the first record kept
        self.replies: deque[bytes] = deque()

    def request(self, message: bytes) -> None:
        """A message from the shim (``seek``, ``sync``) or, not the shim's, data written."""
        if not message.startswith(MAGIC):
            self._written(message)
            return
        words = message[len(MAGIC) :].split(b" ")
        log = self.log
        if words[0] == b"seek" and len(words) == 2:
            with log.lock:
                self.seq = {b"end": log.next_seq}.get(words[1], log.first_seq)  # set, data: nothing cleared
            self.replies.append(MAGIC + b"seeked")
        elif words[0] == b"sync" and len(words) == 2:
            self.replies.append(SYNC + words[1])  # answered when its turn comes (next_message)

    def _written(self, data: bytes) -> None:
        if not self.writes:
            _say("write to /dev/kmsg opened read-only: EBADF (written through stdio: not returned)")
            return
        try:
            self.log.write(data)
        except OSError as exc:
            code = exc.errno or errno.EIO
            _say(f"write to /dev/kmsg: {_errno_name(code)} {exc.strerror} (written through stdio: not returned)")

    def next_message(self) -> bytes | None:
        """What to send next: a reply owed, EPIPE after a drop, or the next record.  A
        ``sync`` is answered ``none`` only when no record is left to send (a record is the
        answer otherwise: the shim is waiting for either)."""
        log = self.log
        while self.replies and self.replies[0].startswith(SYNC):
            with log.lock:
                caught_up = not self.reads or self.seq >= log.next_seq
            if caught_up:
                self.replies[0] = MAGIC + b"none " + self.replies[0][len(SYNC) :]
                break
            self.replies.popleft()
        if self.replies:
            return self.replies[0]
        if not self.reads:
            return None
        with log.lock:
            if self.seq < log.first_seq:
                self.seq = log.first_seq
                self.replies.append(MAGIC + b"epipe")
                return self.replies[0]
            record = log.record(self.seq)
        return record.data if record is not None else None

    def sent(self) -> None:
        if self.replies:
            self.replies.popleft()
        else:
            self.seq += 1


def serve_kmsg(conn: socket.socket, current: Callable[[], KernelLog]) -> None:
    """One /dev/kmsg opened inside the rig, until the client closes it."""
    mode = _hello(conn)
    if mode is None:
        return
    log = current()
    reader = Reader(log, mode)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, READER_SNDBUF)
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    log.listen(wake_w)
    try:
        conn.sendall(MAGIC + b"opened")
        conn.setblocking(False)
        while True:
            message = reader.next_message()
            while message is not None:
                try:
                    conn.send(message)
                except BlockingIOError:
                    break
                except OSError as exc:
                    if exc.errno == errno.EMSGSIZE:  # longer than any record could be: skipped
                        reader.sent()
                        message = reader.next_message()
                        continue
                    raise
                reader.sent()
                message = reader.next_message()
            poller = select.poll()  # not select(): the rig holds far more than FD_SETSIZE fds
            poller.register(wake_r, select.POLLIN)
            poller.register(conn, select.POLLIN | (select.POLLOUT if message is not None else 0))
            ready = dict(poller.poll())
            if ready.get(wake_r, 0) & select.POLLIN:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_r, 4096)
            if ready.get(conn.fileno(), 0) & (select.POLLIN | select.POLLHUP | select.POLLERR):
                try:
                    got = conn.recv(65536)
                except BlockingIOError:
                    continue
                if not got:
                    return  # closed
                reader.request(got)
    finally:
        log.unlisten(wake_w)
        os.close(wake_r)
        os.close(wake_w)


def serve_control(conn: socket.socket, write: Callable[[bytes], int]) -> None:
    """One dynamic_debug/control opened for writing inside the rig: each message is one
    write() of queries."""
    if _hello(conn) is None:
        return
    conn.sendall(MAGIC + b"opened")
    while True:
        got, _, flags, _ = conn.recvmsg(len(MAGIC) + 6 + QUERY_MAX + 1)
        if not got:
            return
        marked = got.startswith(MAGIC + b"write ")
        data = got[len(MAGIC) + 6 :] if marked else got
        try:
            if flags & socket.MSG_TRUNC:
                raise OSError(errno.E2BIG, f"expected <{QUERY_MAX + 1} bytes into control")
            write(data)
            reply = MAGIC + b"ok"
        except OSError as exc:
            code = exc.errno or errno.EIO
            reply = MAGIC + b"error %d" % code
            if not marked:
                text = data.decode("utf-8", "replace").strip()
                _say(f"echo {text!r} > {CONTROL}: {_errno_name(code)} (written through stdio: not returned)")
        if marked:
            conn.sendall(reply)
