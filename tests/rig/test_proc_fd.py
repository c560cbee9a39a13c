"""A process's open device file seen through /proc, as the kernel shows it.

``sleep 60 < /dev/video0`` on a real machine: ``readlink /proc/PID/fd/0`` is "/dev/video0"
("/dev/video0 (deleted)" once the node is removed while the file is open) and ``stat`` through
the link reaches the open file: a character device 81:0, also after the node is gone.  umockdev
alone shows the testbed's regular empty file in its temporary directory there; the rig's
preload library (mdtui/rig/proc_fd.c) and server (nodes updated in place, numbers recorded by
inode) show what the kernel shows.  What the kernel does and the rig does not is listed in
proc_fd.c."""

from __future__ import annotations

import ctypes
import os
import re
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mdtui.live.openers import scan

from .conftest import control

#: (node, how the shell opens it, the fd it lands on, O_ACCMODE)
HELD = {
    "video0": ("/dev/video0", "<", 0, os.O_RDONLY),
    "media0": ("/dev/media0", "3<>", 3, os.O_RDWR),
    "controlC0": ("/dev/snd/controlC0", "<", 0, os.O_RDONLY),
}
LIBC = ctypes.CDLL(None, use_errno=True)  # the global scope: the preloaded readlink, as a program calls it

Holder = Callable[[str], int]
#: readlink() into a stack buffer with a size not known when it was built, with _FORTIFY_SOURCE:
#: glibc's __readlink_chk()
FORTIFIED = r"""
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
    char buf[64];
    ssize_t n = readlink(argv[1], buf, strtoul(argv[2], NULL, 10));
    if (n < 0) { perror("readlink"); return 1; }
    printf("%.*s\n", (int) n, buf);
    return 0;
}
"""


@pytest.fixture
def hold() -> Iterator[Holder]:
    """``hold("sleep 60 < /dev/video0")``: a shell that opens the file and execs sleep; its
    pid once sleep runs.  Every holder is killed at the end."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(command: str) -> int:
        proc = subprocess.Popen(["sh", "-c", f"exec {command}"])
        procs.append(proc)
        comm = Path(f"/proc/{proc.pid}/comm")
        deadline = time.monotonic() + 10
        while comm.read_text() != "sleep\n":  # the shell opened the file, then exec'd
            assert proc.poll() is None and time.monotonic() < deadline, command
            time.sleep(0.01)
        return proc.pid

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def flags(pid: int, fd: int) -> int:
    """The ``flags:`` line of /proc/PID/fdinfo/FD (octal)."""
    found = re.search(r"^flags:\s+([0-7]+)$", Path(f"/proc/{pid}/fdinfo/{fd}").read_text(), re.M)
    assert found, f"no flags line in /proc/{pid}/fdinfo/{fd}"
    return int(found[1], 8)


def c_readlink(path: str, size: int) -> tuple[int, bytes]:
    """readlink(2) as a C program calls it, into a buffer of ``size`` bytes filled with "#"
    beforehand (what it wrote, and one byte after it)."""
    buf = ctypes.create_string_buffer(b"#" * (size + 1), size + 1)
    n = LIBC.readlink(path.encode(), buf, ctypes.c_size_t(size))
    return n, buf.raw[: max(n, 0) + 1]


def node_number(path: str) -> tuple[int, int]:
    st = os.stat(path)
    assert stat.S_ISCHR(st.st_mode), path
    return os.major(st.st_rdev), os.minor(st.st_rdev)


@pytest.mark.parametrize("name", HELD)
def test_an_open_node_reads_and_stats_as_the_node_through_proc(hold: Holder, name: str) -> None:
    node, redirect, fd, accmode = HELD[name]
    number = node_number(node)  # what the rig's /dev says: 81:0, 237:0, 116:0
    pid = hold(f"sleep 60 {redirect} {node}")
    link = f"/proc/{pid}/fd/{fd}"
    assert os.readlink(link) == node
    st = os.stat(link)
    assert stat.S_ISCHR(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == number
    assert stat.S_ISLNK(os.lstat(link).st_mode)  # the link itself stays a link
    for alias in (f"/proc/{pid}/task/{pid}/fd/{fd}", f"/proc//{pid}/fd/{fd}"):
        assert os.readlink(alias) == node and os.stat(alias).st_rdev == st.st_rdev, alias
    assert flags(pid, fd) & os.O_ACCMODE == accmode
    fd_dir = os.open(f"/proc/{pid}/fd", os.O_RDONLY | os.O_DIRECTORY)
    proc_root = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY)
    try:
        # as mdtui/live/openers.py reads them: names relative to the fd directory
        assert os.readlink(str(fd), dir_fd=fd_dir) == node
        by_dir = os.stat(str(fd), dir_fd=fd_dir)
        assert stat.S_ISCHR(by_dir.st_mode) and by_dir.st_rdev == st.st_rdev
        assert stat.S_ISLNK(os.stat(str(fd), dir_fd=fd_dir, follow_symlinks=False).st_mode)
        assert os.readlink(f"{pid}/fd/{fd}", dir_fd=proc_root) == node
        assert os.stat(f"{pid}/fd/{fd}", dir_fd=proc_root).st_rdev == st.st_rdev
    finally:
        os.close(fd_dir)
        os.close(proc_root)


def test_the_tools_see_the_node_through_proc(hold: Holder) -> None:
    """coreutils: ``stat -L`` (statx), ``readlink`` and ``ls -l`` (readlink), ``stat`` of a name
    relative to the working directory."""
    pid = hold("sleep 60 < /dev/video0")
    fmt = ["-c", "%F %t:%T"]
    expected = subprocess.run(["stat", *fmt, "/dev/video0"], capture_output=True, text=True, check=True).stdout
    assert expected.startswith("character special file ")
    seen = subprocess.run(["stat", "-L", *fmt, f"/proc/{pid}/fd/0"], capture_output=True, text=True, check=True)
    assert seen.stdout == expected
    relative = subprocess.run(
        ["sh", "-c", f"cd /proc/{pid}/fd && stat -L -c '%F %t:%T' 0 && readlink 0"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert relative.stdout == expected + "/dev/video0\n"
    listing = subprocess.run(["ls", "-l", f"/proc/{pid}/fd"], capture_output=True, text=True, check=True).stdout
    assert re.search(r" 0 -> /dev/video0$", listing, re.M), listing


def test_readlink_copies_at_most_bufsiz_bytes_and_no_nul(hold: Holder) -> None:
    pid = hold("sleep 60 < /dev/snd/controlC0")
    link = f"/proc/{pid}/fd/0"
    target = b"/dev/snd/controlC0"
    assert c_readlink(link, 5) == (5, b"/dev/#")  # cut as the kernel cuts it
    assert c_readlink(link, len(target)) == (len(target), target + b"#")  # whole, no NUL after it
    assert c_readlink(link, 4096) == (len(target), target + b"#")
    n, _ = c_readlink(link, 0)
    assert (n, ctypes.get_errno()) == (-1, 22)  # EINVAL, as readlink(2) with bufsiz 0


def test_a_fortified_program_reads_the_link_too(hold: Holder, tmp_path: Path) -> None:
    (tmp_path / "readlink.c").write_text(FORTIFIED)
    program = tmp_path / "readlink"
    subprocess.run(["cc", "-O2", "-D_FORTIFY_SOURCE=2", "-o", str(program), str(tmp_path / "readlink.c")], check=True)
    imports = subprocess.run(["nm", "-D", str(program)], capture_output=True, text=True, check=True).stdout
    assert "__readlink_chk" in imports  # not readlink(): what a fortified program calls
    pid = hold("sleep 60 < /dev/video0")
    done = subprocess.run([str(program), f"/proc/{pid}/fd/0", "64"], capture_output=True, text=True, check=True)
    assert done.stdout == "/dev/video0\n"
    overflow = subprocess.run([str(program), f"/proc/{pid}/fd/0", "65"], capture_output=True, text=True)
    assert overflow.returncode == -6 and "buffer overflow detected" in overflow.stderr  # as glibc's own check


def test_the_processs_own_fds_through_self_and_thread_self() -> None:
    fd = os.open("/dev/video0", os.O_RDONLY)
    try:
        for link in (f"/proc/self/fd/{fd}", f"/proc/thread-self/fd/{fd}", f"/proc/{os.getpid()}/fd/{fd}"):
            assert os.readlink(link) == "/dev/video0", link
            assert os.stat(link).st_rdev == os.stat("/dev/video0").st_rdev, link
            assert stat.S_ISCHR(os.stat(link).st_mode), link
    finally:
        os.close(fd)


def test_a_node_removed_while_open_reads_deleted_and_keeps_its_number(hold: Holder) -> None:
    """Unbinding au0828 removes /dev/video0 (devtmpfs unlinks the node); the open file keeps
    its inode and i_rdev.  /dev/media0 and the ALSA nodes stay (snd-usb-audio holds the
    media device): their open files still read their names, without " (deleted)"."""
    numbers = {name: node_number(node) for name, (node, *_) in HELD.items()}
    pids = {name: hold(f"sleep 60 {redirect} {node}") for name, (node, redirect, *_) in HELD.items()}
    assert control("unbind au0828 1-1:1.0") == "ok"
    assert not os.path.exists("/dev/video0")
    for name, (node, _, fd, accmode) in HELD.items():
        link = f"/proc/{pids[name]}/fd/{fd}"
        assert os.readlink(link) == (f"{node} (deleted)" if name == "video0" else node), name
        st = os.stat(link)
        assert stat.S_ISCHR(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == numbers[name], name
        assert flags(pids[name], fd) & os.O_ACCMODE == accmode
    video = scan([numbers["video0"]])
    assert [(f.pid, f.fd, f.node, f.mode, f.device) for f in video.files] == [
        (pids["video0"], 0, "/dev/video0 (deleted)", "r", numbers["video0"])
    ]


def test_a_reset_machine_leaves_old_files_on_deleted_nodes(hold: Holder) -> None:
    """A new machine made its own /dev/video0 (the same number, a new node): the old open
    file is on the old one, as on a machine whose devices all went and came back."""
    number = node_number("/dev/video0")
    pid = hold("sleep 60 < /dev/video0")
    assert control("reset") == "ok"
    assert os.readlink(f"/proc/{pid}/fd/0") == "/dev/video0 (deleted)"
    assert os.stat(f"/proc/{pid}/fd/0").st_rdev == os.makedev(*number)


def test_other_files_are_what_they_are(hold: Holder, tmp_path: Path) -> None:
    """A regular file, a real device and a file in the testbed's /sys are not made nodes."""
    plain = tmp_path / "plain"
    plain.write_text("x")
    pid = hold(f"sleep 60 < {plain}")
    assert os.readlink(f"/proc/{pid}/fd/0") == str(plain)
    assert stat.S_ISREG(os.stat(f"/proc/{pid}/fd/0").st_mode)
    pid = hold("sleep 60 < /dev/null")
    assert os.readlink(f"/proc/{pid}/fd/0") == "/dev/null"
    assert os.stat(f"/proc/{pid}/fd/0").st_rdev == os.stat("/dev/null").st_rdev  # the real one, 1:3
    model = os.path.realpath("/sys/bus/media/devices/media0/model")
    assert model.startswith("/sys/devices/")
    pid = hold(f"sleep 60 < {model}")
    assert os.readlink(f"/proc/{pid}/fd/0") == model
    assert stat.S_ISREG(os.stat(f"/proc/{pid}/fd/0").st_mode)
