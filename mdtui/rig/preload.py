"""umockdev's preload library, built by the project's set-up with four changes:

* a map of emulated files that grows (``fd_map.c``): umockdev 0.17's holds 50 and aborts the
  client at the 51st, where the kernel lets a process hold as many as its RLIMIT_NOFILE
  (v4l2-compliance's multiple-open test opens ~100 files, ``arecord -l`` probes
  controlC0..31);
* an open that cannot reach the testbed fails with the process's errno (EMFILE) instead of
  ending the process (``ioctl_open.c``);
* a descriptor made by ``dup()``/``dup2()``/``fcntl(F_DUPFD)`` shares the emulated file, which
  lives until the last of them closes, as an open file does in the kernel (``dup.c``; a
  shell's ``sleep 60 < /dev/video0`` dup2()s the node to 0 and closes the original);
* /proc shows an emulated node as the kernel shows a node (``proc_fd.c``): ``readlink`` of a
  process's ``/proc/PID/fd/N`` on it gives ``/dev/video0`` (``/dev/video0 (deleted)`` once
  the node is gone), not the testbed's file, and ``stat`` through the link gives a character
  device with the node's number, also after the node was removed (the rig's server records
  each node's number by inode: ``$UMOCKDEV_DIR/.rdev``), where umockdev shows a regular empty
  file in its temporary directory.

``python -m mdtui.rig.preload`` (run by ``make rig-preload``) fetches the Debian source of the
installed umockdev (``apt-get source``, its own package lists in a scratch directory, the
system's untouched), patches ``src/libumockdev-preload.c`` (``patch()``: each change replaces
or hooks code that must be as umockdev 0.17 has it, else RuntimeError) and compiles the
library into the project's environment; nothing else of umockdev changes, and the rig keeps
using the installed umockdev for everything else (the version must match: the library and
the Testbed speak one protocol).  The library is stamped with the umockdev version and a
hash of this recipe (this file and the .c files), so a change to either makes ``current()``
false and the next ``make rig-preload`` builds it again.  ``mdtui rig`` preloads it instead
of the installed one when it is there (``path()``), and says so when it is not.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

LIBRARY = "libumockdev-preload.so.0"
HERE = Path(__file__).resolve().parent
#: where umockdev's own fd map starts and ends in src/libumockdev-preload.c (0.17.x)
FD_MAP = re.compile(r"#define FD_MAP_MAX 50\n.*?\n}\n\n(?=/\*+\n \*\n \* Wrappers for accessing netlink)", re.S)
#: umockdev's ioctl_emulate_open(), and the open wrappers' calls of it (which then take its result)
IOCTL_OPEN = re.compile(
    r"static void\nioctl_emulate_open\(int fd, const char \*dev_path, int must_exist\)\n{\n.*?\n}\n", re.S
)
OPEN_CALL = "    ioctl_emulate_open(ret, path, path != p);"
#: where proc_fd.c goes: before umockdev's stat adjustment, which its templates expand
STAT_ADJUST = "#define STAT_ADJUST_MODE \\\n"
#: the stat templates, each up to its STAT_ADJUST_MODE line, after which proc_fd.c's check goes
STAT_TEMPLATES = re.compile(
    r"(#define (WRAP_STAT|WRAP_FSTATAT|WRAP_VERSTAT|WRAP_VERFSTATAT)\(prefix, suffix\) \\\n"
    r"(?:[^\n]*\\\n)*?    STAT_ADJUST_MODE; *\\\n)"
)
#: umockdev's statx(), up to its return, where proc_fd.c's check goes
STATX = re.compile(
    r"(int statx\(int dirfd, const char \*pathname, int flags, unsigned mask, struct statx \* stx\)\n\{\n"
    r".*?\n)(    return r;\n\}\n)",
    re.S,
)
#: umockdev's readlink() and readlinkat(), replaced by proc_fd.c's
READLINK = "WRAP_3ARGS(ssize_t, -1, readlink, char *, size_t);\n"
READLINKAT = re.compile(
    r"ssize_t readlinkat\(int dirfd, const char \*pathname, char \*buf, size_t bufsiz\)\n\{\n.*?\n\}\n", re.S
)
#: umockdev's ioctl_emulate_close(), replaced by dup.c's (with the dup wrappers)
IOCTL_CLOSE = re.compile(r"static void\nioctl_emulate_close\(int fd\)\n{\n.*?\n}\n", re.S)
#: where a netlink uevent socket is bound: umockdev names it by the fd alone, so a second
#: process's socket on the same fd number took the first one's place (only one of two
#: listeners, two remote agents say, got the uevents); the pid makes it the process's own
EVENT_SOCKET = 'snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/event%i", path, sockfd);'
EVENT_SOCKET_OWN = 'snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/event%i.%i", path, (int) getpid(), sockfd);'
RECIPE = ("fd_map.c", "ioctl_open.c", "proc_fd.c", "dup.c")
DEBIAN = "http://deb.debian.org/debian"


def path(prefix: str = sys.prefix) -> Path:
    """Where the built library lives: in the environment that runs ``mdtui rig``."""
    return Path(prefix) / "lib" / "mdtui-rig" / LIBRARY


def installed_version() -> str:
    """The installed umockdev's Debian version ("0.17.16-1"); RuntimeError if none."""
    done = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "umockdev"], capture_output=True, text=True)
    if done.returncode != 0 or not done.stdout.strip():
        raise RuntimeError("umockdev is not installed (sudo apt-get install umockdev)")
    return done.stdout.strip()


def _suite() -> str:
    """The Debian suite this machine runs (its VERSION_CODENAME)."""
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip('"')
    raise RuntimeError("cannot tell the Debian suite from /etc/os-release")


def _run(line: list[str], cwd: Path, what: str) -> None:
    done = subprocess.run(line, cwd=cwd, capture_output=True, text=True, errors="replace")
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or [""]
        raise RuntimeError(f"{what}: {line[0]} exited with status {done.returncode}: {last[0]}")


def fetch(version: str, work: Path) -> Path:
    """Download and unpack umockdev's source for ``version``; the source directory."""
    lists, cache = work / "lists", work / "cache"
    for d in (lists / "partial", cache / "archives" / "partial"):
        d.mkdir(parents=True)
    sources = work / "sources.list"
    keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
    sources.write_text(f"deb-src [signed-by={keyring}] {DEBIAN} {_suite()} main\n")
    apt = [
        "apt-get",
        "-q",
        f"-oDir::Etc::SourceList={sources}",
        "-oDir::Etc::SourceParts=/nonexistent",
        f"-oDir::State::Lists={lists}",
        f"-oDir::Cache={cache}",
    ]
    _run([*apt, "update"], work, "reading Debian's source lists")
    _run([*apt, "source", "--download-only", f"umockdev={version}"], work, f"downloading umockdev {version}")
    upstream = version.split(":")[-1].rsplit("-", 1)[0]
    with tarfile.open(work / f"umockdev_{upstream}.orig.tar.xz") as tar:
        tar.extractall(work, filter="data")
    return work / f"umockdev-{upstream}"


def patch(source: str) -> str:
    """``src/libumockdev-preload.c`` with the growable fd map, opens that fail with the
    process's errno (EMFILE) where umockdev would end the process, /proc fd links of
    emulated nodes shown as the kernel shows them, and a uevent socket per process."""
    new, count = FD_MAP.subn(lambda _: (HERE / "fd_map.c").read_text() + "\n", source)
    if count != 1:
        raise RuntimeError("umockdev's fd map is not where 0.17 has it: cannot replace it")
    new, count = IOCTL_OPEN.subn(lambda _: (HERE / "ioctl_open.c").read_text(), new)
    if count != 1 or new.count(OPEN_CALL) != 2:
        raise RuntimeError("umockdev's ioctl_emulate_open() is not as 0.17 has it: cannot replace it")
    new = new.replace(OPEN_CALL, OPEN_CALL.replace("    ioctl_emulate_open", "    ret = ioctl_emulate_open"))
    new, count = IOCTL_CLOSE.subn(lambda _: (HERE / "dup.c").read_text(), new)
    if count != 1:
        raise RuntimeError("umockdev's ioctl_emulate_close() is not as 0.17 has it: cannot replace it")
    if new.count(EVENT_SOCKET) != 1:
        raise RuntimeError("umockdev's netlink bind() is not as 0.17 has it: cannot patch it")
    return _patch_proc_fd(new.replace(EVENT_SOCKET, EVENT_SOCKET_OWN))


def _patch_proc_fd(source: str) -> str:
    """proc_fd.c spliced in: its checks after umockdev's stat adjustment (the four stat
    templates and statx()), its readlink() and readlinkat() in place of umockdev's."""
    if source.count(STAT_ADJUST) != 1 or source.count(READLINK) != 1:
        raise RuntimeError("umockdev's stat adjustment or readlink() is not as 0.17 has it: cannot patch them")

    def hook(match: re.Match[str]) -> str:
        dirfd = "dirfd" if "FSTATAT" in match[2] else "AT_FDCWD"
        return f"{match[1]}    PROC_FD_STAT_ADJUST({dirfd});{' ' * 40}\\\n"

    new, count = STAT_TEMPLATES.subn(hook, source)
    if count != 4:
        raise RuntimeError(f"umockdev's stat templates are not as 0.17 has them ({count} of 4): cannot patch them")
    new, count = STATX.subn(lambda m: f"{m[1]}    proc_fd_statx(r, dirfd, pathname, stx);\n{m[2]}", new)
    if count != 1:
        raise RuntimeError("umockdev's statx() is not as 0.17 has it: cannot patch it")
    new, count = READLINKAT.subn("/* readlinkat(): proc_fd.c's */\n", new)
    if count != 1:
        raise RuntimeError("umockdev's readlinkat() is not as 0.17 has it: cannot replace it")
    new = new.replace(READLINK, "/* readlink(): proc_fd.c's */\n")
    return new.replace(STAT_ADJUST, (HERE / "proc_fd.c").read_text() + "\n" + STAT_ADJUST)


def compile_library(src: Path, version: str, out: Path) -> None:
    upstream = version.split(":")[-1].rsplit("-", 1)[0]
    preload = src / "src" / "libumockdev-preload.c"
    preload.write_text(patch(preload.read_text()))
    (src / "src" / "config.h").write_text(
        f'#define PACKAGE_NAME "umockdev"\n#define VERSION "{upstream}"\n#define IOCTL_REQUEST_TYPE unsigned long\n'
    )
    cc = os.environ.get("CC", "cc")
    files = [f"src/{name}" for name in ("libumockdev-preload.c", "debug.c", "utils.c", "ioctl_tree.c")]
    line = [cc, "-shared", "-fPIC", "-O2", "-Isrc", *files, "-ldl", "-lpthread", "-o", str(out)]
    _run(line, src, "compiling umockdev's preload library")


def _stamp(version: str) -> str:
    """What a library built here was made from: the umockdev version and this recipe."""
    parts = [(HERE / name).read_bytes() for name in RECIPE] + [Path(__file__).read_bytes()]
    recipe = hashlib.sha256(b"".join(parts)).hexdigest()[:16]
    return f"{version} {recipe}"


def _stamp_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".version")


def current(dest: Path) -> bool:
    """Whether ``dest`` was built from the installed umockdev by this recipe (a library of
    another umockdev speaks another protocol to the Testbed)."""
    try:
        return dest.exists() and _stamp_path(dest).read_text() == _stamp(installed_version())
    except (OSError, RuntimeError):
        return False


def build(dest: Path) -> str:
    """Build the library into ``dest`` (replaced only once it is complete); what was done."""
    version = installed_version()
    stamp = _stamp_path(dest)
    if current(dest):
        return f"{dest}: up to date (umockdev {version})"
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mdtui-umockdev-") as tmp:
        work = Path(tmp)
        built = work / LIBRARY
        compile_library(fetch(version, work), version, built)
        shutil.move(built, dest)
    stamp.write_text(_stamp(version))
    return f"{dest}: built from umockdev {version} with a growable fd map, EMFILE opens, shared dups and /proc fd links"


def main() -> int:
    try:
        print(build(path()))
    except (RuntimeError, OSError) as exc:
        print(f"mdtui rig: cannot build umockdev's preload library: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
