"""The tuner arbitration au0828 installs through enable_source/disable_source."""

from __future__ import annotations

import errno

import pytest

from allocator import Kernel, KernelError


def _link_enabled(k: Kernel, source: str, sink: str) -> bool:
    mdev = k.allocator.instances()[0].mdev
    ent = {e.name: e for e in mdev.entities.values()}
    link = next(ln for ln in ent[source].links if not ln.is_backlink and ln.sink.entity is ent[sink])
    return bool(link.flags & 1)


def test_dvb_is_exclusive_analog_and_audio_share(hvr: Kernel) -> None:
    video = hvr.open("/dev/video0")
    hvr.ioctl(video, "VIDIOC_G_TUNER")
    assert _link_enabled(hvr, "tuner 0-0061", "au8522 0-0047")
    with pytest.raises(KernelError) as err:
        hvr.open("/dev/dvb/adapter0/frontend0")
    assert err.value.errno == errno.EBUSY
    assert any(e.text == "Tuner is busy. Error -16" for e in hvr.events.history)
    pcm = hvr.open("/dev/snd/pcmC0D0c")
    hvr.ioctl(pcm, "SNDRV_PCM_IOCTL_HW_PARAMS")  # audio capture shares with video
    hvr.close(video)  # the audio user takes the tuner over
    assert _link_enabled(hvr, "tuner 0-0061", "au8522 0-0047")
    hvr.close(pcm)
    assert not _link_enabled(hvr, "tuner 0-0061", "au8522 0-0047")
    fe = hvr.open("/dev/dvb/adapter0/frontend0")  # now free
    assert _link_enabled(hvr, "tuner 0-0061", "Auvitek AU8522 QAM/8VSB Frontend")
    video = hvr.open("/dev/video0")
    with pytest.raises(KernelError) as err:
        hvr.ioctl(video, "VIDIOC_STREAMON")  # v4l_enable_media_source(): any error -> EBUSY
    assert err.value.errno == errno.EBUSY
    pcm = hvr.open("/dev/snd/pcmC0D0c")
    with pytest.raises(KernelError) as err:
        hvr.ioctl(pcm, "SNDRV_PCM_IOCTL_HW_PARAMS")
    assert err.value.errno == errno.EBUSY
    for fd in (fe, video, pcm):
        hvr.close(fd)
    assert not _link_enabled(hvr, "tuner 0-0061", "Auvitek AU8522 QAM/8VSB Frontend")
    assert hvr.check() == []


def test_querycap_and_unknown_ioctls(hvr: Kernel) -> None:
    fd = hvr.open("/dev/video0")
    assert hvr.ioctl(fd, "VIDIOC_QUERYCAP")["driver"] == "au0828"
    with pytest.raises(KernelError) as err:
        hvr.ioctl(fd, "VIDIOC_NOPE")
    assert err.value.errno == errno.ENOTTY
    hvr.close(fd)
