"""How many emulated files a process can hold in the rig, and what happens past that.

umockdev connects a socket to the testbed for every emulated /dev file (its ioctl channel),
so a process holds about half its RLIMIT_NOFILE of them; the rig's preload library
(mdtui/rig/preload.py) makes the next open() fail with EMFILE, as the kernel's open() fails
when a process is out of files, where umockdev's own library ends the process."""

from __future__ import annotations

import resource
import subprocess
from pathlib import Path

import pytest

PROGRAM = r"""
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/media.h>
int main(int argc, char **argv) {
    int n = 0, fd, last = -1;
    for (;;) {
        fd = open(argv[1], O_RDWR);
        if (fd < 0) break;
        last = fd;
        n++;
    }
    int err = errno;
    struct media_device_info info;
    int ok = last < 0 || ioctl(last, MEDIA_IOC_DEVICE_INFO, &info) == 0 || strncmp(argv[1], "/dev/media", 10);
    printf("%d %s %s\n", n, strerror(err), ok ? "usable" : "broken");
    return 0;
}
"""
LIMIT = 1024


@pytest.fixture(scope="module")
def opener(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("emfile")
    (out / "emfile.c").write_text(PROGRAM)
    subprocess.run(["cc", "-O2", "-o", str(out / "emfile"), str(out / "emfile.c")], check=True)
    return out / "emfile"


@pytest.mark.parametrize("node", ["/dev/media0", "/dev/snd/controlC0", "/dev/video0"])
def test_opens_until_emfile_and_the_process_goes_on(opener: Path, node: str) -> None:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, LIMIT))

    done = subprocess.run([str(opener), node], capture_output=True, text=True, preexec_fn=limit, timeout=300)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr[-300:]
    opened, reason = done.stdout.split(" ", 1)
    # two descriptors per emulated file (the file, umockdev's socket): about half the limit
    assert (LIMIT - 3) // 2 - 8 <= int(opened) <= (LIMIT - 3) // 2
    assert reason.strip() == "Too many open files usable"
