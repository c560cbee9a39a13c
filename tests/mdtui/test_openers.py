"""The /proc scanner for the processes that hold a device open (issue #12,
``mdtui/live/openers.py``): over /proc trees the tests write, where ``PID/fd/N`` are symlinks
to plain files and the ``stat`` seam gives some of those files a device number, and once over
the real /proc of this test process."""

from __future__ import annotations

import dataclasses
import errno
import os
import pwd
import shutil
import stat
import tempfile
from pathlib import Path
from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st

from mdtui.live.openers import SYSCALLS, Calls, Openers, OpenFile, scan

VIDEO0, MEDIA0, NULL = (81, 0), (238, 0), (1, 3)
O_RDONLY, O_WRONLY, O_RDWR = 0o100000, 0o100001, 0o2  # as fdinfo shows them (O_LARGEFILE...)


class Tree:
    """A /proc-like tree under ``base/proc`` and the files its fd links point to under
    ``base/files``; ``devices`` gives files (by inode) a device number, through ``stat``."""

    def __init__(self, base: Path) -> None:
        self.base, self.proc = base, base / "proc"
        self.proc.mkdir()
        self.devices: dict[tuple[int, int], tuple[int, int]] = {}

    def node(self, rel: str, device: tuple[int, int] | None = None) -> str:
        path = self.base / "files" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        if device is not None:
            st_ = path.stat()
            self.devices[st_.st_dev, st_.st_ino] = device
        return str(path)

    def process(
        self, pid: int | str, comm: bytes = b"proc\n", fds: dict[str, tuple[str, bytes | None]] | None = None
    ) -> Path:
        """``fds``: fd name → (link target, fdinfo bytes or None for no fdinfo file)."""
        d = self.proc / str(pid)
        (d / "fd").mkdir(parents=True)
        (d / "fdinfo").mkdir()
        (d / "comm").write_bytes(comm)
        for name, (target, fdinfo) in (fds or {}).items():
            os.symlink(target, d / "fd" / name)
            if fdinfo is not None:
                (d / "fdinfo" / name).write_bytes(fdinfo)
        return d

    def stat(self, name: str, *, dir_fd: int | None = None) -> os.stat_result | SimpleNamespace:
        real = os.stat(name, dir_fd=dir_fd)
        device = self.devices.get((real.st_dev, real.st_ino))
        if device is None:
            return real
        return SimpleNamespace(st_mode=stat.S_IFCHR | 0o660, st_rdev=os.makedev(*device), st_uid=real.st_uid)

    def calls(self, **more) -> Calls:
        return dataclasses.replace(SYSCALLS, stat=self.stat, **more)


def fdinfo(flags: int) -> bytes:
    return f"pos:\t0\nflags:\t0{flags:o}\nmnt_id:\t25\nino:\t7\n".encode()


def me() -> str:
    return pwd.getpwuid(os.getuid()).pw_name


def failing(fail: dict[str, int], call=SYSCALLS.opendir):
    """``opendir`` failing with an errno for some names (``chmod 000`` denies root nothing)."""

    def opendir(name: str, dir_fd: int | None) -> int:
        if name in fail:
            raise OSError(fail[name], os.strerror(fail[name]), name)
        return call(name, dir_fd)

    return opendir


def test_finds_the_openers_by_device_number_and_counts_the_hidden(tmp_path: Path) -> None:
    t = Tree(tmp_path)
    video0, media0 = t.node("dev/video0", VIDEO0), t.node("dev/media0", MEDIA0)
    cam = t.node("srv/cam", VIDEO0)  # video0 bind-mounted (or mknod'ed) elsewhere: same number
    fake = t.node("dev/video1")  # named like a node, not one: a plain file
    log = t.node("var/log/tvh.log")
    t.process(
        4121,
        b"tvheadend\n",
        {
            "0": ("socket:[29071469]", fdinfo(O_RDWR)),
            "1": ("pipe:[29071470]", fdinfo(O_WRONLY)),
            "2": (log, fdinfo(O_WRONLY)),
            "3": (video0, fdinfo(O_RDWR)),
            "4": (media0, fdinfo(O_RDONLY)),
            "7": ("anon_inode:[eventfd]", fdinfo(O_RDWR)),
        },
    )
    t.process(200, b"bash\n", {"0": (fake, fdinfo(O_RDWR)), "1": (log, fdinfo(O_WRONLY))})
    t.process(300, b"secret\n", {"3": (video0, fdinfo(O_RDWR))})
    (t.proc / "300" / "fd").chmod(0)  # stops a user; for root, the seam refuses it too
    t.process(400, b"gone\n", {"3": (video0, fdinfo(O_RDWR))})
    t.process(500, b"sleep\n", {"0": (cam, fdinfo(O_RDONLY))})
    (t.proc / "self").symlink_to("4121")
    (t.proc / "sys").mkdir()

    def opendir(name: str, dir_fd: int | None) -> int:
        if name == "400/fd":  # listed, then exits before its fds are read
            shutil.rmtree(t.proc / "400")
        return failing({"300/fd": errno.EACCES})(name, dir_fd)

    try:
        got = scan({VIDEO0, MEDIA0}, t.proc, calls=t.calls(opendir=opendir))
    finally:
        (t.proc / "300" / "fd").chmod(0o700)

    user = me()
    assert [(f.pid, f.fd) for f in got.files] == [(500, 0), (4121, 3), (4121, 4)]
    assert got.files[1] == OpenFile(4121, "tvheadend", user, 3, video0, "rw", VIDEO0)
    assert got.files[2] == OpenFile(4121, "tvheadend", user, 4, media0, "r", MEDIA0)
    assert got.files[0] == OpenFile(500, "sleep", user, 0, cam, "r", VIDEO0)
    assert (got.hidden, got.unread, got.error) == (1, 0, None)  # 400 exited: neither hidden nor unread
    assert got.hidden_text == "1 hidden (permission)"
    assert scan({MEDIA0}, t.proc, calls=t.calls(opendir=failing({"300/fd": errno.EPERM}))).files == (
        OpenFile(4121, "tvheadend", user, 4, media0, "r", MEDIA0),
    )
    assert scan(set(), t.proc, calls=t.calls()) == Openers((), 0, 0)
    known = scan({VIDEO0}, t.proc, calls=t.calls(), pids=[4121, 400, 4121])  # the watch of known openers
    assert [(f.pid, f.fd) for f in known.files] == [(4121, 3)] and known.hidden == 0


def test_a_live_proc_s_hostile_cases(tmp_path: Path) -> None:
    t = Tree(tmp_path)
    video0 = t.node("dev/video0", VIDEO0)
    t.process(10, b"a\x1b[31mb\x07\xff\xfe\n", {"3": (video0, fdinfo(O_WRONLY))})  # garbage comm
    t.process(11, b"noflags\n", {"3": (video0, b"pos:\t0\nmnt_id:\t9\n"), "5": (video0, b"flags:\tzz\n")})
    t.process(18, b"raced\n", {"3": (video0, None)})  # no fdinfo: closed after its link was read
    t.process(12, b"closing\n", {"3": (video0, fdinfo(O_RDWR)), "4": (video0, fdinfo(O_RDWR))})
    t.process(13, b"exiting\n", {"3": (video0, fdinfo(O_RDWR))})
    (t.proc / "13" / "comm").unlink()  # exited after its fds were read
    fifo = t.process(14, b"fifo\n")
    shutil.rmtree(fifo / "fd")
    os.mkfifo(fifo / "fd")  # would block an open without O_NONBLOCK / O_DIRECTORY
    t.process(15, b"many\n", {str(n): ("pipe:[1]", None) for n in range(11)})  # more than max_fds
    t.process(16, b"ioctl\n", {"3": (video0, fdinfo(0o3)), "x": (video0, fdinfo(O_RDWR))})
    os.mkfifo(t.proc / "16" / "fdinfo" / "9")
    t.process(17, b"", {"9": (video0, None)})
    (t.proc / "17" / "fdinfo").rmdir()
    os.mkfifo(t.proc / "17" / "fdinfo")  # fdinfo a FIFO: no hang, mode unknown

    def readlink(name: str, *, dir_fd: int) -> str:
        if name == "4" and _comm(dir_fd) == b"closing\n":
            raise FileNotFoundError(errno.ENOENT, "closed", name)  # closed after the listing
        return os.readlink(name, dir_fd=dir_fd)

    got = scan({VIDEO0}, t.proc, calls=t.calls(readlink=readlink), max_fds=10)
    rows = {(f.pid, f.fd): (f.comm, f.mode) for f in got.files}
    assert rows == {
        (10, 3): ("a\x1b[31mb\x07\ufffd\ufffd", "w"),
        (11, 3): ("noflags", "?"),
        (11, 5): ("noflags", "?"),
        (12, 3): ("closing", "rw"),
        (16, 3): ("ioctl", "ioctl"),
        (17, 9): ("", "?"),
    }
    assert (got.hidden, got.unread) == (0, 2)  # 14's fd is a FIFO; 15 has more than max_fds
    assert scan({VIDEO0}, t.proc, calls=t.calls()).unread == 1  # 15 is read whole without the cap


def _comm(dir_fd: int) -> bytes:
    return SYSCALLS.read("../comm", dir_fd)


def test_a_proc_root_that_cannot_be_read_is_said(tmp_path: Path) -> None:
    got = scan({VIDEO0}, tmp_path / "nowhere")
    assert got.files == () and got.error is not None and "cannot read" in got.error


def test_the_real_proc_finds_this_process_s_dev_null() -> None:
    if not stat.S_ISCHR(os.stat("/dev/null").st_mode):
        return  # a /dev/null that is not the device: nothing to look for
    rdev = os.stat("/dev/null").st_rdev
    device = (os.major(rdev), os.minor(rdev))
    assert device == NULL
    r, w = os.open("/dev/null", os.O_RDONLY), os.open("/dev/null", os.O_WRONLY)
    try:
        got = scan({device})
    finally:
        os.close(r)
        os.close(w)
    mine = {f.fd: f for f in got.files if f.pid == os.getpid()}
    comm = Path("/proc/self/comm").read_text().removesuffix("\n")
    assert mine[r] == OpenFile(os.getpid(), comm, me(), r, "/dev/null", "r", NULL)
    assert mine[w] == OpenFile(os.getpid(), comm, me(), w, "/dev/null", "w", NULL)


# -- random trees with random garbage never raise ---------------------------------------

names = st.one_of(
    st.integers(0, 10**6).map(str), st.sampled_from(["self", "٣", "1a", "-1", "00", " 7", "99999999999999999999"])
)
garbage = st.binary(max_size=64)
targets = st.one_of(
    st.sampled_from(
        ["socket:[1]", "pipe:[2]", "anon_inode:[eventfd]", "/", "/nonexistent", "dev", "/dev/video0 (deleted)"]
    ),
    st.just("@NODE"),
    st.just("@FILE"),
    st.text(max_size=20).filter(lambda s: "\0" not in s and s != ""),
)
fd_kinds = st.sampled_from(["dir", "fifo", "file", "missing", "loop"])
process = st.tuples(names, garbage, fd_kinds, st.lists(st.tuples(names, targets, st.none() | garbage), max_size=6))
faults = st.lists(
    st.tuples(
        st.sampled_from(["opendir", "names", "readlink", "stat", "read"]),
        st.sampled_from([errno.ENOENT, errno.ESRCH, errno.EACCES, errno.EPERM, errno.EIO, errno.ENOTDIR]),
        st.integers(0, 30),
    ),
    max_size=4,
)


@settings(max_examples=50, deadline=None)
@given(st.lists(process, max_size=6), faults, st.integers(1, 8))
def test_random_trees_with_garbage_never_raise(procs, fault_list, max_fds) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        t = Tree(Path(tmp))
        node, plain = t.node("dev/video0", VIDEO0), t.node("etc/passwd")
        for pid, comm, kind, fds in procs:
            d = t.proc / pid
            if d.exists() or pid.strip() != pid or pid.startswith("-"):
                continue
            d.mkdir()
            (d / "comm").write_bytes(comm)
            (d / "fdinfo").mkdir()
            if kind == "fifo":
                os.mkfifo(d / "fd")
            elif kind == "file":
                (d / "fd").write_bytes(comm)
            elif kind == "loop":
                os.symlink("fd", d / "fd")
            elif kind == "dir":
                (d / "fd").mkdir()
                for name, target, info in fds:
                    target = {"@NODE": node, "@FILE": plain}.get(target, target)
                    if not (d / "fd" / name).is_symlink() and "/" not in name:
                        os.symlink(target, d / "fd" / name)
                        if info is not None:
                            (d / "fdinfo" / name).write_bytes(info)
        counter = {"n": 0}

        def faulty(what: str, call):
            def wrapped(*args, **kwargs):
                counter["n"] += 1
                for which, code, at in fault_list:
                    if which == what and at == counter["n"]:
                        raise OSError(code, os.strerror(code))
                return call(*args, **kwargs)

            return wrapped

        base = t.calls()
        calls = Calls(
            **{
                f.name: faulty(f.name, getattr(base, f.name)) if f.name != "close" else base.close
                for f in dataclasses.fields(Calls)
            }
        )
        got = scan({VIDEO0, NULL}, t.proc, calls=calls, max_fds=max_fds)
        assert isinstance(got, Openers) and got.hidden >= 0 and got.unread >= 0
        assert list(got.files) == sorted(got.files, key=lambda f: (f.pid, f.fd))
        assert all(f.device == VIDEO0 and f.node == node for f in got.files)
        assert all(f.mode in {"r", "w", "rw", "ioctl", "?"} for f in got.files)


def test_numbers_no_device_can_have_are_never_asked_for() -> None:
    """A G_TOPOLOGY interface may claim any 32-bit major:minor (the fuzzer found 2**32-1)."""
    assert scan([(2**32 - 1, 0), (-1, 3), (4096, 0), (0, 1 << 20)]) == Openers((), 0, 0)
