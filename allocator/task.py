"""The processes that open files in the simulated kernel: what ``/proc/PID`` shows of one.

The kernel's ``task_struct`` is far more; a file needs only whose it is (``current`` at
``open()``): its pid, its ``comm`` (the name ``/proc/PID/comm`` shows, at most 15 bytes:
``TASK_COMM_LEN`` is 16 with the NUL) and its user.  A script names the process an open
runs in (``open /dev/video0 tvheadend``); the first open in a name starts that process, and
later opens in the same name are the same process, so one pid can hold several files.
"""

from __future__ import annotations

import itertools
import threading
from typing import NamedTuple

#: TASK_COMM_LEN - 1: the kernel truncates a longer name (``__set_task_comm``)
COMM_MAX = 15
#: the process an open without a name runs in: the shell a script's lines are typed into
SHELL = "sh"
#: pids of the simulated processes start here (a booted machine's first pids are taken)
PID_BASE = 1000
USER = "user"


class Task(NamedTuple):
    pid: int
    comm: str
    user: str = USER


class TaskTable:
    """The simulated processes by name; a name starts one process the first time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pids = itertools.count(PID_BASE)
        self._tasks: dict[str, Task] = {}

    def get(self, comm: str = SHELL) -> Task:
        comm = comm[:COMM_MAX]
        with self._lock:
            task = self._tasks.get(comm)
            if task is None:
                task = self._tasks[comm] = Task(next(self._pids), comm)
            return task
