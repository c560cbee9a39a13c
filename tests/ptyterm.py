"""A program on the slave side of a pseudo-terminal, as a person's terminal runs it: its
output collected from the master by a thread, keys typed into the master."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


class PtyTerminal:
    def __init__(
        self,
        argv: Sequence[str | Path],
        env: Mapping[str, str],
        cwd: Path | None = None,
        size: tuple[int, int] = (30, 100),
    ) -> None:
        """``size``: rows and columns (also in LINES and COLUMNS).  The child runs in a new
        session with no controlling terminal: the kernel sends it no SIGHUP, so a hangup
        can only be seen on the terminal itself."""
        self.master, slave = pty.openpty()
        os.set_blocking(self.master, True)
        rows, columns = size
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        env = {**env, "TERM": "xterm-256color", "COLUMNS": str(columns), "LINES": str(rows)}
        self.child = subprocess.Popen(
            [str(a) for a in argv], cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave, start_new_session=True
        )
        os.close(slave)
        self.output = bytearray()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            self.output += data

    def wait_for(self, text: bytes, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            assert time.monotonic() < deadline, f"{text!r} never shown: {bytes(self.output[-400:])!r}"
            assert self.child.poll() is None, f"exited {self.child.returncode}: {bytes(self.output[-2000:])!r}"
            time.sleep(0.02)

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def hang_up(self) -> None:
        os.close(self.master)

    def finish(self, timeout: float = 5) -> int:
        """The child's exit status; killed if it has not exited within ``timeout``."""
        try:
            return self.child.wait(timeout)
        finally:
            if self.child.poll() is None:
                self.child.kill()
                self.child.wait()
