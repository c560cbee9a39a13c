"""Who holds a device open: a scan of ``/proc/PID/fd`` matched by device number (issue #12).

``scan(devices)`` returns every open file, in every process this user may inspect, that is one
of the character devices ``devices`` names by ``(major, minor)``: pid, comm, user, fd, node and
access mode, plus how many processes could not be inspected (``n hidden (permission)``) or
not be read whole.  It matches by device number, never by path, so a node that is bind-mounted
elsewhere, renamed, deleted, or made with mknod in a container's /dev still matches.

What one scan costs, and why it is done this way.  The kernel keeps no index from a device to
the files open on it, so a scan looks at every open file of every process: per process one
``openat`` of ``PID/fd`` (relative to a descriptor of the /proc root, no path walk from /),
its listing (``dup``, two ``getdents64``, ``close``) and a ``close``; per fd one
``readlinkat`` relative to that directory.  ``readlink`` on an fd link is ``d_path`` of the
open file: it never enters the file's file system (it cannot block on a dead NFS server, as
``stat`` can), and it alone settles most fds: a target that does not begin with ``/``
(``socket:[…]``, ``pipe:[…]``, ``anon_inode:[…]``, ``net:[…]``…) is a pseudo file, never a
device node, and costs nothing more.  A target that begins with ``/`` may be a device node
wherever it lives (a bind mount, a renamed or deleted node, a node in another mount
namespace), so it is ``stat``-ed: ``stat`` follows the fd link to the open file itself (not to
whatever the path names now) and gives ``st_mode`` (``S_ISCHR``) and ``st_rdev``.  Filtering
on ``/dev/`` would save those stats and miss exactly the cases the issue names.  Stat-ing every
fd instead of reading its link would be one call per fd too, but it makes the file system
answer for every open regular file (a blocking call for files on a hung network mount).
Only for a match are ``PID/comm``, the owner of ``PID`` and ``PID/fdinfo/N`` (the ``flags:``
line, octal: ``O_ACCMODE``) read, all relative to the same ``PID/fd`` descriptor (``../comm``),
so a pid reused by a new process mid-scan cannot lend its name to the old one's files.
``bench/openers_bench.py`` measures it; the figures are in ``bench/RESULTS.md``.

What a live /proc does during a scan, and what the scan does about it: a process that exits
(ENOENT, ESRCH anywhere) is dropped with everything found in it, since its files are closed;
an fd closed between the listing and its link is skipped; a process whose ``fd`` directory
(or one of its links) this user may not read (EACCES, EPERM) is counted in ``hidden``, never
dropped silently; any other failure (not a directory, an I/O error) and a directory of more
than ``max_fds`` entries (read lazily, never listed whole) count in ``unread``.  Names that
are not numbers are skipped; every open is ``O_NONBLOCK`` (a FIFO where a file or directory
should be never blocks) and every read is bounded.  comm is kept as the kernel gives it,
control characters included (the UI escapes them); bytes that are not UTF-8 become U+FFFD.

The seam: every system call goes through ``Calls``, a frozen dataclass of callables whose
defaults are the ``os`` functions.  Tests replace the one they need with
``dataclasses.replace(SYSCALLS, stat=...)``: ``stat`` to give a file in a tree they wrote a
device number (their ``PID/fd/N`` are symlinks to plain files), ``opendir`` to fail with
EACCES as root, where ``chmod 000`` denies nothing.
"""

from __future__ import annotations

import errno
import itertools
import os
import pwd
import stat as stat_mod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

PROC = Path("/proc")
#: the kernel's default ``fs.nr_open``: no process has more fds unless the sysctl was raised
MAX_FDS = 1 << 20
#: ``/proc/PID/comm`` is at most 16 bytes; ``fdinfo`` a few lines (more for epoll, inotify)
READ_LIMIT = 4096

GONE = frozenset({errno.ENOENT, errno.ESRCH})
DENIED = frozenset({errno.EACCES, errno.EPERM})

#: O_ACCMODE of the ``flags:`` line; 3 is Linux's "no read, no write: ioctl only"
MODES = ("r", "w", "rw", "ioctl")
UNKNOWN_MODE = "?"


class OpenFile(NamedTuple):
    """One open file on a device of interest."""

    pid: int
    comm: str  # as the kernel has it, control characters and all
    user: str  # the owner of /proc/PID, by name where it has one, else the uid
    fd: int
    node: str  # the fd link: "/dev/video0", "/srv/cam", "/dev/video0 (deleted)"
    mode: str  # "r", "w", "rw", "ioctl", or "?" when fdinfo has no flags line
    device: tuple[int, int]  # (major, minor): which of the devices asked for


class Openers(NamedTuple):
    """A scan's answer: the files, sorted by pid and fd, and what could not be seen."""

    files: tuple[OpenFile, ...]
    hidden: int  # processes whose fds this user may not read (EACCES, EPERM)
    unread: int  # processes not read whole for another reason (see the module's docstring)
    error: str | None = None  # why the /proc root itself could not be listed

    @property
    def hidden_text(self) -> str:
        """``3 hidden (permission)``, or "" when nothing is hidden."""
        return f"{self.hidden} hidden (permission)" if self.hidden else ""


def _opendir(name: str, dir_fd: int | None) -> int:
    return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)


def _names(dir_fd: int) -> Iterator[str]:
    """The entries of a directory, read as they come (a huge one is never held whole)."""
    with os.scandir(dir_fd) as entries:
        for entry in entries:
            yield entry.name


def _read(name: str, dir_fd: int) -> bytes:
    fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY, dir_fd=dir_fd)
    try:
        return os.read(fd, READ_LIMIT)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Calls:
    """The system calls of a scan.  ``opendir(name, dir_fd)`` returns a descriptor (``dir_fd``
    None: ``name`` is absolute); ``names(fd)`` iterates a directory's entries; ``readlink``
    and ``stat`` take ``(name, *, dir_fd)`` as the ``os`` functions do, and ``stat`` follows
    links (it may return anything with ``st_mode``, ``st_rdev`` and ``st_uid``);
    ``read(name, dir_fd)`` returns at most ``READ_LIMIT`` bytes."""

    opendir: Callable[[str, int | None], int] = _opendir
    names: Callable[[int], Iterable[str]] = _names
    readlink: Callable[..., str] = os.readlink
    stat: Callable[..., os.stat_result] = os.stat
    read: Callable[[str, int], bytes] = _read
    close: Callable[[int], None] = os.close


SYSCALLS = Calls()


class _Process:
    """What one process's fd directory gave: its matches, and whether it hid or broke."""

    __slots__ = ("denied", "gone", "hits", "unread")

    def __init__(self) -> None:
        self.hits: list[tuple[str, str, int]] = []  # fd name, link, st_rdev
        self.denied = self.gone = self.unread = False

    def failed(self, exc: OSError) -> None:
        if exc.errno in GONE:
            self.gone = True  # the fd was closed, or the process exited: decided later
        elif exc.errno in DENIED:
            self.denied = True
        else:
            self.unread = True


def scan(
    devices: Iterable[tuple[int, int]],
    root: Path = PROC,
    *,
    calls: Calls = SYSCALLS,
    max_fds: int = MAX_FDS,
    pids: Iterable[int] | None = None,
) -> Openers:
    """Every open file on the character devices ``devices`` ((major, minor) pairs) in the
    processes under ``root`` (only in ``pids`` when given: the cheap watch of openers already
    known, one fd directory each instead of every process's).  Never raises for what a live
    /proc does (see the module)."""
    wanted = frozenset(_devt(major, minor) for major, minor in devices) - {None}
    if not wanted:
        return Openers((), 0, 0)
    try:
        proc_fd = calls.opendir(os.fspath(root), None)
    except OSError as exc:
        return Openers((), 0, 0, f"cannot read {root}: {os.strerror(exc.errno or errno.EIO)}")
    files: list[OpenFile] = []
    hidden = unread = 0
    users: dict[int, str] = {}
    try:
        try:
            listed = calls.names(proc_fd) if pids is None else map(str, sorted(set(pids)))
            names = [name for name in listed if name.isdigit() and name.isascii()]
        except OSError as exc:
            return Openers((), 0, 0, f"cannot list {root}: {os.strerror(exc.errno or errno.EIO)}")
        for name in names:
            try:
                fd_dir = calls.opendir(name + "/fd", proc_fd)
            except OSError as exc:
                if exc.errno in DENIED:
                    hidden += 1
                elif exc.errno not in GONE:
                    unread += 1
                continue
            try:
                found = _fds(fd_dir, wanted, calls, max_fds)
                if found.hits:
                    files.extend(_describe(int(name), fd_dir, found, calls, users))
            finally:
                calls.close(fd_dir)
            hidden += found.denied
            unread += found.unread and not found.denied
    finally:
        calls.close(proc_fd)
    files.sort(key=lambda f: (f.pid, f.fd))
    return Openers(tuple(files), hidden, unread)


def _fds(fd_dir: int, wanted: frozenset[int], calls: Calls, max_fds: int) -> _Process:
    """The hot loop: one readlink per fd, one stat per fd whose link is a path."""
    found = _Process()
    readlink, stat, hits = calls.readlink, calls.stat, found.hits
    names: Iterator[str] = iter(())
    try:
        names = iter(calls.names(fd_dir))
        for name in itertools.islice(names, max_fds):
            try:
                target = readlink(name, dir_fd=fd_dir)
                if target[:1] != "/":
                    continue  # socket:, pipe:, anon_inode:, net:...: never a device node
                st = stat(name, dir_fd=fd_dir)
            except OSError as exc:
                found.failed(exc)
                continue
            if st.st_rdev in wanted and stat_mod.S_ISCHR(st.st_mode) and name.isdigit() and name.isascii():
                hits.append((name, target, st.st_rdev))
        if next(names, None) is not None:
            found.unread = True  # more than max_fds entries
    except OSError as exc:  # the listing itself failed midway
        found.failed(exc)
    finally:
        close = getattr(names, "close", None)
        if close is not None:
            close()
    return found


def _describe(pid: int, fd_dir: int, found: _Process, calls: Calls, users: dict[int, str]) -> list[OpenFile]:
    """The matches of one process with its comm, user and modes; none if it has exited."""
    try:
        comm = _text(calls.read("../comm", fd_dir))
        comm = comm[:-1] if comm.endswith("\n") else comm  # the line's end the kernel adds
        uid = calls.stat("..", dir_fd=fd_dir).st_uid
    except OSError as exc:
        if exc.errno in GONE:
            return []  # it exited: its files are closed
        comm, uid = "?", None
    out = []
    for name, target, rdev in found.hits:
        try:
            mode = _mode(calls.read("../fdinfo/" + name, fd_dir))
        except OSError as exc:
            if exc.errno in GONE:
                continue  # closed since its link was read (or the process exited)
            mode = UNKNOWN_MODE
        out.append(
            OpenFile(
                pid,
                comm,
                _user(uid, users),
                int(name),
                _text(os.fsencode(target)),
                mode,
                (os.major(rdev), os.minor(rdev)),
            )
        )
    return out


def _devt(major: int, minor: int) -> int | None:
    """``makedev()``; None for numbers no device can have (a G_TOPOLOGY interface may claim
    any 32-bit major and minor: a device number holds 12 and 20 bits in the kernel)."""
    if not (0 <= major < 1 << 12 and 0 <= minor < 1 << 20):
        return None
    return os.makedev(major, minor)


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _mode(fdinfo: bytes) -> str:
    """``flags:\\t0100002`` → "rw"; "?" without a readable flags line."""
    for line in fdinfo.splitlines():
        key, sep, value = line.partition(b":")
        if sep and key.strip() == b"flags":
            try:
                return MODES[int(value.strip(), 8) & os.O_ACCMODE]
            except ValueError:
                return UNKNOWN_MODE
    return UNKNOWN_MODE


def _user(uid: int | None, users: dict[int, str]) -> str:
    if uid is None:
        return "?"
    name = users.get(uid)
    if name is None:
        try:
            name = pwd.getpwuid(uid).pw_name
        except (KeyError, OverflowError):
            name = str(uid)
        users[uid] = name
    return name
