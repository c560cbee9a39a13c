"""Who opened each file: the simulated processes behind the file table (allocator/task.py)."""

from __future__ import annotations

import errno

import pytest

from allocator import Kernel, KernelError
from allocator.task import PID_BASE


def test_a_name_is_one_process_and_each_file_remembers_whose_it_is(hvr: Kernel) -> None:
    a = hvr.open("/dev/video0", "tvheadend")
    b = hvr.open("/dev/media0")
    c = hvr.open("/dev/vbi0", "tvheadend")
    files = {f.fd: f for f in hvr.view.open_files()}
    assert [(files[fd].task.pid, files[fd].task.comm) for fd in (a, b, c)] == [
        (PID_BASE, "tvheadend"),
        (PID_BASE + 1, "sh"),
        (PID_BASE, "tvheadend"),
    ]
    assert files[a].opened_at < files[b].opened_at < files[c].opened_at
    assert {f.mode for f in files.values()} == {"rw"}


def test_a_long_name_is_cut_as_the_kernel_cuts_comm(hvr: Kernel) -> None:
    fd = hvr.open("/dev/video0", "a-very-long-process-name")
    assert hvr.view.open_file(fd).task.comm == "a-very-long-pro"  # TASK_COMM_LEN - 1


def test_close_by_node_takes_the_named_process_file(hvr: Kernel) -> None:
    first = hvr.open("/dev/video0", "tvheadend")
    second = hvr.open("/dev/video0", "vlc")
    hvr.close("/dev/video0", "vlc")
    assert [f.fd for f in hvr.view.open_files()] == [first]
    with pytest.raises(KernelError) as err:
        hvr.close("/dev/video0", "vlc")
    assert err.value.errno == errno.EBADF
    assert second not in {f.fd for f in hvr.view.open_files()}


def test_a_node_gone_from_dev_reads_deleted_as_readlink_shows_it(hvr: Kernel) -> None:
    fd = hvr.open("/dev/video0", "tvheadend")
    hvr.unbind("au0828", "1-1:1.0")
    assert hvr.view.open_file(fd).path == "/dev/video0 (deleted)"
    [(_mdev, holder)] = [(m, h) for m, h in hvr.view.holders() if h.state == "deferred"]
    assert holder.kept_by == (fd,) and holder.unbound_at is not None
