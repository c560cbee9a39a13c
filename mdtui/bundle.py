"""``mdtui dump --bundle FILE``: a bug-report bundle, a gzip'd tar readable without mdtui.

One top directory, ``mdtui-bundle/``, holding plain text, JSON and DOT (``README.txt`` says
what each file is, how it was made, and everything that could not be read and why):

    README.txt        what is here, when and how it was made, what could not be read
    versions.txt      kernel release, mdtui, Python, Textual, pyudev, rich
    modules.txt       module, refcnt, used by
    open-files.txt    per media device, the processes holding its nodes open, and the hidden
    kernel-log.txt    the kernel log about media, USB and the drivers, WARN/BUG and traces
    snapshot.json     ``mdtui dump --format json`` (mdtui/dump.schema.json)
    devices/N.txt     ``mdtui dump --format text --device N``
    devices/N.json    that device's object of snapshot.json
    devices/N.dot     ``mdtui dump --format dot --device N`` (not for an unregistered device)
    state.json        mdtui's own lossless copy of the state (mdtui/persist.py), for
                      ``mdtui --source bundle:FILE``

Every read is bounded (the kernel log: a number of records and bytes; /proc files: a few
hundred bytes), member names are sanitized (device names come from sysfs), and FILE is
written atomically: the archive is made in memory, written to a temporary file in FILE's
directory, synced and renamed over FILE, so a failure leaves FILE as it was and no
temporary file behind.  A FILE that exists and is no regular file (``/dev/stdout``, a
FIFO, ``/dev/full``) is written straight, never replaced.
"""

from __future__ import annotations

import dataclasses
import datetime
import errno
import gzip
import io
import json
import os
import platform
import re
import tarfile
import textwrap
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata

from . import __version__, atomic, persist
from .commands import Step
from .model import MediaDeviceView, SystemSnapshot
from .render import dot, jsondump, text
from .render.text import printable
from .sources import Source

TOP = "mdtui-bundle"
#: the kernel log lines kept (the last ones), and the most read to find them
KERNEL_LOG_LINES = 500
KMSG_MAX_RECORDS = 200_000
KMSG_MAX_BYTES = 64 << 20
#: the lines kept after a WARNING/BUG/KASAN/oops line: its trace
TRACE_LINES = 40
#: what a kernel log line must mention to be kept (case-insensitive)
RELEVANT = re.compile(
    r"media|usb|au0828|au8522|xc5000|snd[-_]usb|uvc|dvb|v4l|video|refcount_t|kasan|lockdep"
    r"|general protection|circular locking|use-after-free",
    re.IGNORECASE,
)
#: the first line of a kernel report (WARN, BUG, oops, KASAN, lockdep): kept, with its trace
REPORT = re.compile(
    r"^(WARNING: |BUG: |Oops|general protection fault|-+\[ cut here \]-+)|refcount_t: |KASAN|"
    r"possible circular locking|possible recursive locking|inconsistent lock state"
)
#: the lines of a report's trace that follow it (registers, the stack, the end marker)
TRACE = re.compile(
    r"^(\s|Call Trace|RIP|RSP|RAX|RDX|RBP|R\d+|FS|CS|CR2|Code|Modules linked in|CPU|Hardware name|Workqueue"
    r"|Tainted|---\[ end trace|\? |<TASK>|</TASK>|irq event stamp|hardirqs|softirqs|Memory state|Read of size"
    r"|Write of size|Allocated by|Freed by|The buggy address|other info|stack backtrace|\*)"
)
SIM_RELEASE = re.compile(r"simulated kernel (\S+)")
#: a member's device name: what sysfs says, made safe (a name may hold anything but "/")
SAFE = re.compile(r"[^A-Za-z0-9._-]+")
NAME_MAX = 48


@dataclass(frozen=True)
class Member:
    name: str  # below TOP
    data: bytes
    what: str  # for README.txt


@dataclass(frozen=True)
class KernelLog:
    lines: list[str]
    what: str  # where they came from
    unreadable: str | None  # why not (None: read)
    read: int = 0  # the lines looked at


def safe_name(name: str, taken: set[str]) -> str:
    """A file name for a device: letters, digits, ``.``, ``_``, ``-`` only, no leading dot,
    at most NAME_MAX characters, and not one already ``taken`` (a suffix ``-2``...)."""
    base = SAFE.sub("_", name).strip("._-")[:NAME_MAX] or "device"
    candidate, n = base, 1
    while candidate.lower() in taken:
        n += 1
        candidate = f"{base}-{n}"
    taken.add(candidate.lower())
    return candidate


# -- what goes in ------------------------------------------------------------------------------


def members(
    source: Source,
    snap: SystemSnapshot,
    refused: Sequence[tuple[Step, OSError]] = (),
    *,
    command: str = "mdtui dump --bundle",
    made: datetime.datetime | None = None,
    interfaces: bool = False,
    kmsg_path: str = "/dev/kmsg",
    osrelease: str = "/proc/sys/kernel/osrelease",
) -> list[Member]:
    """Every file of the bundle, README.txt first."""
    made = made or datetime.datetime.now(datetime.UTC)
    when = made.strftime("%Y-%m-%d %H:%M:%S UTC")
    unread: list[str] = []  # "what: why", for README.txt
    hint = hidden_hint(source)
    release, release_from = kernel_release(source, snap, osrelease)
    if release is None:
        unread.append(f"kernel release: {release_from}")
    out: list[Member] = [
        Member(
            "versions.txt",
            _encode(versions(release, release_from)),
            "kernel release and the versions of mdtui, Python and the libraries it uses",
        ),
        Member("modules.txt", _encode(modules(snap)), "each loaded module (and built-in driver): refcnt, used by"),
        Member(
            "open-files.txt",
            _encode(open_files(snap, hint)),
            "per media device, the processes that hold its nodes "
            "open (pid, comm, user, fd, node, mode, since), and how many could not be inspected",
        ),
    ]
    log = kernel_log(source, kmsg_path)
    if log.unreadable is not None:
        unread.append(f"kernel log: {log.unreadable}")
    body = (
        "".join(f"{line}\n" for line in log.lines)
        if log.lines
        else f"(nothing: {log.unreadable or f'none of the {log.read} lines read matched'})\n"
    )
    out.append(Member("kernel-log.txt", _encode(f"# {log.what}\n{body}"), log.what))
    out.append(
        Member(
            "snapshot.json",
            jsondump.render(snap, refused).encode(),
            "the whole state, as `mdtui dump --format json` prints it (schema: mdtui/dump.schema.json)",
        )
    )
    taken: set[str] = set()
    for dev in snap.media_devices:
        name = safe_name(dev.name, taken)
        one = dataclasses.replace(snap, media_devices=(dev,))
        shown = f"{dev.name} ({dev.info.model or dev.key})" if dev.name != name else dev.name
        out.append(Member(f"devices/{name}.txt", _encode(text.render(one)), f"{shown}: `mdtui dump --format text`"))
        out.append(
            Member(
                f"devices/{name}.json",
                (json.dumps(jsondump.device(dev, snap), indent=1) + "\n").encode(),
                f"{shown}: its object in snapshot.json",
            )
        )
        graph = dot.render(one, interfaces)
        if graph:
            flag = " --interfaces" if interfaces else ""
            out.append(Member(f"devices/{name}.dot", _encode(graph), f"{shown}: `mdtui dump --format dot{flag}`"))
        unread += _unread(dev, hint)
    try:
        state = persist.dumps(
            snap,
            made={"at": when, "mdtui": __version__, "command": command, "source": snap.source, "kernel": release or ""},
        )
        out.append(
            Member(
                "state.json",
                state.encode(),
                "mdtui's own lossless copy of the state: `mdtui --source bundle:THIS-FILE` shows it again (read-only)",
            )
        )
    except ValueError as exc:  # a source that broke the model's contract: the rest still helps
        unread.append(f"state.json (for --source bundle:): not written: {exc}")
    readme = readme_text(snap, out, unread, refused, command=command, when=when)
    return [Member("README.txt", _encode(readme), "this file"), *out]


def _encode(text_: str) -> bytes:
    return text_.encode("utf-8", "backslashreplace")  # a lone surrogate (a file name not in UTF-8) too


def hidden_hint(source: Source) -> str:
    """What to do about processes hidden from this user: run as root, unless mdtui reading
    this machine already is (then no advice helps: another PID namespace, hidepid)."""
    from .sources.live import LiveSource

    return (
        "not readable even as root"
        if isinstance(source, LiveSource) and os.geteuid() == 0
        else ("run as root to see them")
    )


def _unread(dev: MediaDeviceView, hint: str) -> list[str]:
    out = []
    if dev.unread is not None:
        out.append(f"{dev.name}: what the media ioctls tell: {dev.unread.reason}")
    if dev.open_files is None:
        out.append(f"{dev.name}: open files: not looked for by this source")
    if dev.hidden_openers:
        n = dev.hidden_openers
        out.append(f"{dev.name}: {n} process{'es' if n > 1 else ''} hidden (permission): {hint}")
    return out


def readme_text(
    snap: SystemSnapshot,
    files: list[Member],
    unread: list[str],
    refused: Sequence[tuple[Step, OSError]],
    *,
    command: str,
    when: str,
) -> str:
    width = max((len(m.name) for m in files), default=10) + 2
    lines = [
        "mdtui bug-report bundle",
        "=======================",
        "",
        f"Made {when} by mdtui {__version__} (Python {platform.python_version()}).",
        f"Command line: {command}",
        f"Source: {snap.source}" + (f" ({'; '.join(snap.notes)})" if snap.notes else ""),
        f"Media devices: {len(snap.media_devices)}"
        + (f" ({', '.join(printable(d.name) for d in snap.media_devices)})" if snap.media_devices else ""),
        "",
        "Every file is plain text, JSON or Graphviz DOT (`dot -Tsvg devices/media0.dot`).",
        "`mdtui --source bundle:THIS-FILE` (and `mdtui dump --source bundle:THIS-FILE`) shows the",
        "state again, read-only; bundles carry no events.",
        "",
        "Files",
        "-----",
        f"{'README.txt':<{width}}this file",
        *(_wrapped(m.name, printable(m.what), width) for m in files),
        "",
        "Could not be read",
        "-----------------",
        *([f"- {printable(u)}" for u in unread] or ["nothing: everything mdtui looks for was read"]),
    ]
    if snap.anomalies or any(d.anomalies for d in snap.media_devices):
        lines += ["", "Anomalies", "---------"]
        lines += [f"- {printable(d.name)}: {printable(a)}" for d in snap.media_devices for a in d.anomalies]
        lines += [f"- {printable(a)}" for a in snap.anomalies]
    if refused:
        lines += ["", "Script steps the kernel refused", "-------------------------------"]
        for step, exc in refused:
            name = errno.errorcode.get(exc.errno or 0, "?")
            lines.append(f"- line {step.line}: {step}: {name}: {exc.strerror}")
    return "\n".join(lines) + "\n"


def _wrapped(label: str, value: str, width: int) -> str:
    return textwrap.fill(value, 96, initial_indent=f"{label:<{width}}", subsequent_indent=" " * width)


def versions(release: str | None, release_from: str) -> str:
    rows = [
        ("kernel", f"{release} ({release_from})" if release else f"unknown ({release_from})"),
        ("mdtui", __version__),
    ]
    rows.append(("python", f"{platform.python_version()} ({platform.python_implementation()})"))
    for package in ("textual", "rich", "pyudev"):
        try:
            rows.append((package, metadata.version(package)))
        except metadata.PackageNotFoundError:
            rows.append((package, "not installed"))
    rows.append(("platform", platform.platform()))
    return "".join(f"{name:<10}{value}\n" for name, value in rows)


def kernel_release(source: Source, snap: SystemSnapshot, osrelease: str) -> tuple[str | None, str]:
    """The kernel's release and where it was read; (None, why) when unknown."""
    made = getattr(source, "made", None)  # a bundle: what it recorded
    if isinstance(made, dict):
        release = made.get("kernel") or None
        return release, "as the bundle recorded it" if release else "the bundle did not record it"
    if snap.source == "sim":
        m = next((m for m in map(SIM_RELEASE.search, snap.notes) if m), None)
        return (m[1], "the simulated kernel") if m else (None, "the simulated kernel's notes do not say")
    try:
        with open(osrelease, "rb") as f:
            data = f.read(256)
    except OSError as exc:
        return None, f"{osrelease}: {_oserror(exc)}"
    release = data.decode("utf-8", "replace").strip()
    return (release, osrelease) if release else (None, f"{osrelease} is empty")


def modules(snap: SystemSnapshot) -> str:
    rows = [f"{'module':<24}{'refcnt':>9}  used by"]
    for m in snap.modules:
        refcnt = "built in" if m.refcnt is None else str(m.refcnt)
        rows.append(f"{printable(m.name):<24}{refcnt:>9}  {printable(' '.join(m.used_by)) or '-'}")
    return "\n".join(rows) + "\n"


def open_files(snap: SystemSnapshot, hint: str = "run as root to see them") -> str:
    out = ["Files open on each media device's nodes (/dev/mediaN and its interfaces' nodes)", ""]
    for dev in snap.media_devices:
        out.append(f"{printable(dev.name)}: {printable(dev.info.model or '?')} (key {printable(dev.key)})")
        if dev.open_files is None:
            out.append("  not looked for by this source")
        elif not dev.open_files:
            out.append("  none")
        for f in dev.open_files or ():
            since = f" since {text.stamp(f.since)}" if f.since is not None else ""
            out.append(
                f"  pid {f.pid} {printable(f.comm)} ({printable(f.user)}) fd {f.fd} {printable(f.node)} {f.mode}{since}"
            )
        hidden = "unknown" if dev.hidden_openers is None else str(dev.hidden_openers)
        note = f": {hint}" if dev.hidden_openers else ""
        out.append(f"  hidden_openers: {hidden}{note}")
        out.append("")
    if not snap.media_devices:
        out += ["no media devices", ""]
    if snap.open_files:
        out.append("Every open file on a device node (the simulated kernel's list)")
        out += [
            f"  pid {f.pid} {printable(f.comm)} ({printable(f.user)}) fd {f.fd} {printable(f.node)} {f.mode}"
            for f in snap.open_files
        ]
        out.append("")
    return "\n".join(out)


# -- the kernel log ----------------------------------------------------------------------------


def kernel_log(source: Source, kmsg_path: str = "/dev/kmsg") -> KernelLog:
    from .sources.live import LiveSource

    if source.simulated:
        events = source.history()[-KERNEL_LOG_LINES:]
        lines = [f"[{e.time:12.6f}] {e.kind:<7} {e.line()}" for e in events]
        return KernelLog(lines, f"the simulated kernel's log and events (the last {KERNEL_LOG_LINES})", None)
    if isinstance(source, LiveSource):
        return read_kmsg(kmsg_path)
    name = getattr(source, "name", type(source).__name__)
    return KernelLog([], "the kernel log", f"not read: the state comes from {name} (see its kernel-log.txt)")


def read_kmsg(path: str = "/dev/kmsg", keep: int = KERNEL_LOG_LINES) -> KernelLog:
    """The last ``keep`` lines of the kernel's ring buffer that concern media devices, USB,
    the drivers, or report a WARN/BUG (with the trace after it), read from the start of the
    buffer without blocking; bounded in records and bytes."""
    what = (
        f"{path}: the last {keep} kernel log lines about media, USB and the drivers "
        "(au0828, snd-usb-audio, uvcvideo, dvb, v4l), and WARNING/BUG/KASAN/lockdep reports with their traces"
    )
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        hint = " (kernel.dmesg_restrict: run as root)" if exc.errno in (errno.EACCES, errno.EPERM) else ""
        return KernelLog([], what, f"{path}: {_oserror(exc)}{hint}")
    kept: deque[str] = deque(maxlen=keep)
    trace, total, seen, why, partial = 0, 0, 0, None, b""
    try:
        for _ in range(KMSG_MAX_RECORDS):
            try:
                chunk = os.read(fd, 8192)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.EPIPE:  # records overwritten while we read: go on
                    continue
                why = f"{path}: read: {_oserror(exc)} (what was read before is kept)"
                break
            if not chunk:
                break
            total += len(chunk)
            *records, partial = (partial + chunk).split(b"\n")
            for record in records:
                line = _kmsg_line(record)
                if line is None:
                    continue
                seen += 1
                message = line.split("] ", 1)[1]
                if REPORT.search(message):
                    trace = TRACE_LINES
                    kept.append(line)
                elif trace > 0 and TRACE.match(message):
                    kept.append(line)
                    trace -= 1
                else:
                    trace = 0
                    if RELEVANT.search(message):
                        kept.append(line)
            if total >= KMSG_MAX_BYTES:
                why = f"{path}: stopped after {KMSG_MAX_BYTES >> 20} MiB"
                break
    finally:
        os.close(fd)
    return KernelLog(list(kept), what, why, seen)


def _kmsg_line(record: bytes) -> str | None:
    """``[  12.345678] message`` from ``prio,seq,usec,flags;message``; None for the
    continuation lines (`` KEY=value``) and what is not a record."""
    header, sep, message = record.decode("utf-8", "replace").partition(";")
    if not sep or record.startswith(b" "):
        return None
    fields = header.split(",")
    try:
        usec = int(fields[2])
    except (IndexError, ValueError):
        return None
    return f"[{usec // 1_000_000:5d}.{usec % 1_000_000:06d}] {message}"


# -- writing -----------------------------------------------------------------------------------


def archive(files: list[Member], mtime: float) -> bytes:
    """The gzip'd tar of ``files`` under TOP/, with its directories; owner root, 0644/0755."""
    buf = io.BytesIO()
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=int(mtime)) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.USTAR_FORMAT) as tar,
    ):
        dirs = sorted({TOP} | {f"{TOP}/{os.path.dirname(m.name)}" for m in files if "/" in m.name})
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, int(mtime)
            tar.addfile(info)
        for m in files:
            assert not m.name.startswith("/") and ".." not in m.name.split("/"), m.name
            info = tarfile.TarInfo(f"{TOP}/{m.name}")
            info.size, info.mode, info.mtime = len(m.data), 0o644, int(mtime)
            tar.addfile(info, io.BytesIO(m.data))
    return buf.getvalue()


def write_bundle(
    path: str,
    source: Source,
    snap: SystemSnapshot,
    refused: Sequence[tuple[Step, OSError]] = (),
    *,
    made: datetime.datetime | None = None,
    **options: object,
) -> list[Member]:
    """Make the bundle of ``snap`` and write it to ``path``; its files (README.txt first)."""
    made = made or datetime.datetime.now(datetime.UTC)
    files = members(source, snap, refused, made=made, **options)  # type: ignore[arg-type]
    atomic.replace(path, archive(files, made.timestamp()))
    return files


def _oserror(exc: OSError) -> str:
    code = exc.errno or errno.EIO
    return f"{exc.strerror or os.strerror(code)} ({errno.errorcode.get(code, str(code))})"


def error_text(exc: OSError) -> str:
    """``Permission denied (EACCES)``: how ``cannot write FILE:`` goes on."""
    return _oserror(exc)
