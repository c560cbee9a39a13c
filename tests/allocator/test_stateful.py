"""Random lifecycles over several devices, with every invariant checked after every step."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from allocator import KernelError
from allocator.loader import MODULES

from ..conftest import make_kernel

DRIVERS = ["au0828", "snd-usb-audio", "uvcvideo"]
IOCTLS = [
    "VIDIOC_STREAMON",
    "VIDIOC_STREAMOFF",
    "SNDRV_PCM_IOCTL_HW_PARAMS",
    "SNDRV_PCM_IOCTL_HW_FREE",
    "MEDIA_IOC_G_TOPOLOGY",
]


class Lifecycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.k = make_kernel("au0828", "snd_usb_audio")
        self.errors = 0

    def _try(self, fn, *args) -> None:
        try:
            fn(*args)
        except KernelError:
            self.errors += 1

    @precondition(lambda self: len(list(self.k.usb.devices())) < 4)
    @rule(device=st.sampled_from(["hvr950q", "hvr950q", "hvr850", "c270"]))
    def plug(self, device: str) -> None:
        self.k.plug(device)

    @rule(data=st.data())
    def unplug(self, data: st.DataObject) -> None:
        names = [d.name for d in self.k.usb.devices()]
        if names:
            self.k.unplug(data.draw(st.sampled_from(names)))

    @rule(data=st.data(), driver=st.sampled_from(DRIVERS), bind=st.booleans())
    def bind_unbind(self, data: st.DataObject, driver: str, bind: bool) -> None:
        intfs = [i.name for d in self.k.usb.devices() for i in d.interfaces]
        if intfs:
            intf = data.draw(st.sampled_from(intfs))
            self._try(self.k.bind if bind else self.k.unbind, driver, intf)

    @rule(module=st.sampled_from(sorted(MODULES)), load=st.booleans())
    def modprobe_rmmod(self, module: str, load: bool) -> None:
        self._try(self.k.modprobe if load else self.k.rmmod, module)

    @rule(data=st.data())
    def open_node(self, data: st.DataObject) -> None:
        nodes = sorted(p for p in self.k.devices.nodes if not p.startswith("/dev/bus"))
        if nodes:
            self._try(self.k.open, data.draw(st.sampled_from(nodes)))

    @rule(data=st.data())
    def close_fd(self, data: st.DataObject) -> None:
        fds = sorted(self.k.files.files)
        if fds:
            self.k.close(data.draw(st.sampled_from(fds)))

    @rule(data=st.data(), request=st.sampled_from(IOCTLS))
    def ioctl(self, data: st.DataObject, request: str) -> None:
        fds = sorted(self.k.files.files)
        if fds:
            self._try(self.k.ioctl, data.draw(st.sampled_from(fds)), request)

    @invariant()
    def invariants_hold(self) -> None:
        assert self.k.check() == []
        assert self.k.events.subscriber_errors == []

    def teardown(self) -> None:
        for fd in sorted(self.k.files.files):
            self.k.close(fd)
        for dev in list(self.k.usb.devices()):
            self.k.unplug(dev.name)
        assert self.k.allocator.instances() == [] and self.k.view.media_devices() == []
        assert self.k.check() == []


Lifecycle.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestLifecycle = Lifecycle.TestCase
