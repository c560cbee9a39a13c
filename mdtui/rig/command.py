"""COMMAND, run by the rig's server the way a shell runs a foreground command.

* It cannot be started: one line naming it and why, and the shell's exit status: 127 when it
  is not found, 126 when it is found but cannot be executed.
* It ends: the rig exits with its status, or 128+N when signal N killed it.
* The rig gets SIGHUP, SIGINT or SIGTERM: COMMAND gets it too, and the rig waits for COMMAND
  to end before it tears the testbed down.  A signal the terminal sent (``si_code`` is
  SI_KERNEL: Ctrl-C, a hangup) already reached COMMAND, which is in the same foreground
  process group, and is not sent twice.  A signal that arrives before COMMAND starts ends the
  rig as if it had killed COMMAND.

To tell where a signal came from, the three signals are blocked in every thread of the
server (``Relay`` must be made before the server starts any thread) and taken by one thread
with ``sigwaitinfo()``; COMMAND starts with an empty signal mask, and with SIGPIPE and SIGXFSZ
at their defaults (Python ignores them), as ``subprocess`` would give it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import threading
from collections.abc import Callable

RELAYED = {signal.SIGHUP, signal.SIGINT, signal.SIGTERM}
SI_KERNEL = 0x80  # <asm-generic/siginfo.h>: sent by the kernel (the tty driver), not kill()
EX_NOEXEC = 126  # found but cannot be executed, as the shell says
EX_NOTFOUND = 127


def exit_status(status: int) -> int:
    """A wait status as a shell's ``$?``: the exit code, or 128+N for a death by signal N."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def cannot_run(command: list[str], exc: OSError) -> tuple[str, int]:
    """The line and the exit status for a COMMAND that could not be executed."""
    code = exc.errno or errno.ENOEXEC
    name = errno.errorcode.get(code, str(code))
    reason = "command not found" if code == errno.ENOENT and "/" not in command[0] else os.strerror(code)
    return f"mdtui rig: {command[0]}: {reason} ({name})", EX_NOTFOUND if code == errno.ENOENT else EX_NOEXEC


def spawn(command: list[str], env: dict[str, str]) -> int:
    """Start COMMAND (searched in PATH); its pid.  Raises OSError when it cannot be run."""
    return os.posix_spawnp(command[0], command, env, setsigmask=(), setsigdef=(signal.SIGPIPE, signal.SIGXFSZ))


class Relay:
    """SIGHUP, SIGINT and SIGTERM for the server: passed on to COMMAND (see the module
    docstring).  Make it first thing in the server: the signals are blocked from then on."""

    def __init__(self) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, RELAYED)
        self.lock = threading.Lock()
        self.child: int | None = None
        self.early: int | None = None  # the first signal that came before COMMAND started
        threading.Thread(target=self._run, name="signals", daemon=True).start()

    def _run(self) -> None:
        while True:
            info = signal.sigwaitinfo(RELAYED)
            with self.lock:
                if self.child is None:
                    self.early = self.early or info.si_signo
                elif info.si_code != SI_KERNEL:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(self.child, info.si_signo)

    def start(self, start: Callable[[], int]) -> int | None:
        """Run ``start`` (it spawns COMMAND and returns its pid) unless a signal came first;
        the pid, or None."""
        with self.lock:
            if self.early is not None:
                return None
            self.child = start()
            return self.child
