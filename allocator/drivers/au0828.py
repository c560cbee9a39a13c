"""au0828 (drivers/media/usb/au0828): the HVR-950Q's video, VBI and DVB side.

Probe (interface 0 only, else ENODEV): ``media_device_usb_allocate`` -> v4l2_device_register ->
i2c + card setup (au8522 decoder and tuner subdevs) -> analog register (connectors
Television/Composite/S-Video, ``au0828a video``, ``au0828a vbi``, v4l2_mc_create_media_graph)
-> DVB register (frontend, demux with 256 ts-outs, DVR with 256 ts-outs, net,
dvb_create_media_graph) -> ``au0828_media_device_register``: register the media device if
nobody has, else run the graph notify now; disable tuner->demod/decoder links; add the
entity_notify; install enable_source/disable_source.

Disconnect removes DVB at once and unregisters the video nodes; the rest (subdevs,
connectors, and the ``media_device_delete``) happens when the v4l2_device's last reference
goes, which an open ``/dev/video0`` or ``/dev/vbi0`` delays until its last close.

Mainline details kept on purpose: ``au0828_unregister_media_device`` skips the delete when
the devnode is no longer registered, and it removes *every* entity_notify and clears the
source handlers of the media device, even those a newer au0828 instance installed.
The RC (IR) input device is not modelled.
"""

from __future__ import annotations

import contextlib
import errno
from typing import TYPE_CHECKING, Any

from ..device import dev_str
from ..errors import KernelError
from ..files import File
from ..mc.device import EntityNotify, MediaDevice
from ..mc.entity import Entity, Link, sink, source
from ..mc.uapi import (
    MEDIA_ENT_F_ATV_DECODER,
    MEDIA_ENT_F_AUDIO_CAPTURE,
    MEDIA_ENT_F_AUDIO_MIXER,
    MEDIA_ENT_F_CONN_COMPOSITE,
    MEDIA_ENT_F_CONN_RF,
    MEDIA_ENT_F_CONN_SVIDEO,
    MEDIA_ENT_F_DTV_DEMOD,
    MEDIA_ENT_F_IO_V4L,
    MEDIA_ENT_F_IO_VBI,
    MEDIA_ENT_F_TUNER,
    MEDIA_ENT_FL_CONNECTOR,
    MEDIA_LNK_FL_ENABLED,
    PAD_SIGNAL_ANALOG,
    PAD_SIGNAL_AUDIO,
    PAD_SIGNAL_DV,
)
from ..subsys import dvb, v4l2
from ..usb import UsbInterface
from ..usbcore import UsbDriver
from . import Holder
from .frontends import AU8522_XC5000

if TYPE_CHECKING:
    from ..kernel import Kernel

BOARDS = {
    (0x2040, 0x7200): "Hauppauge HVR950Q",
    (0x2040, 0x7210): "Hauppauge HVR950Q",
    (0x2040, 0x7217): "Hauppauge HVR950Q",
    (0x2040, 0x721B): "Hauppauge HVR950Q",
    (0x2040, 0x721E): "Hauppauge HVR950Q",
    (0x2040, 0x721F): "Hauppauge HVR950Q",
    (0x2040, 0x7280): "Hauppauge HVR950Q",
    (0x0FD9, 0x0008): "Hauppauge HVR950Q",
    (0x2040, 0x7240): "Hauppauge HVR850",
}
CONNECTORS = (
    ("Television", MEDIA_ENT_F_CONN_RF),
    ("Composite", MEDIA_ENT_F_CONN_COMPOSITE),
    ("S-Video", MEDIA_ENT_F_CONN_SVIDEO),
)
SHAREABLE = {MEDIA_ENT_F_IO_V4L, MEDIA_ENT_F_AUDIO_CAPTURE, MEDIA_ENT_F_IO_VBI}
#: the device caps au0828_analog_register() gives both nodes, besides VIDEO_ or VBI_CAPTURE
ANALOG_CAPS = v4l2.V4L2_CAP_AUDIO | v4l2.V4L2_CAP_READWRITE | v4l2.V4L2_CAP_STREAMING | v4l2.V4L2_CAP_TUNER


class Au0828Dev:
    """``struct au0828_dev``: one bound (or not yet released) HVR-950Q."""

    def __init__(self, intf: UsbInterface, board: str) -> None:
        self.intf = intf
        self.board = board
        self.media_dev: MediaDevice | None = None
        self.v4l2_dev: v4l2.V4l2Device | None = None
        self.vdev: v4l2.VideoDevice | None = None
        self.vbi_dev: v4l2.VideoDevice | None = None
        self.adapter: dvb.DvbAdapter | None = None
        self.decoder: Entity | None = None
        self.tuner: Entity | None = None
        self.input_ent: list[Entity] = []
        self.notify: EntityNotify | None = None
        self.i2c_bus = -1
        self.users = 0
        self.disconnected = False
        self.disconnected_at: float | None = None
        self.alive = True
        self.active_link: Link | None = None
        self.active_link_owner: Entity | None = None
        self.active_source: Entity | None = None
        self.active_sink: Entity | None = None
        self.active_link_shared = False
        self.active_link_user: Entity | None = None
        self.active_link_user_pipe: object | None = None

    @property
    def label(self) -> str:
        return f"au0828 on {self.intf.name}"

    def open_files(self, k: Kernel) -> list[File]:
        """The V4L2 files still open on this device's video and vbi nodes (what keeps its
        v4l2_device, and so its media device reference, after a disconnect)."""
        nodes = {id(v.device) for v in (self.vdev, self.vbi_dev) if v is not None and v.device is not None}
        return sorted((f for f in k.files.open_files() if id(f.device) in nodes), key=lambda f: f.fd)


class Au0828VideoOps(v4l2.NodeOps):
    def __init__(self, driver: Au0828Driver, dev: Au0828Dev) -> None:
        self.driver = driver
        self.dev = dev

    def open(self, vdev: v4l2.VideoDevice, file: File) -> None:
        self.dev.users += 1

    def release(self, vdev: v4l2.VideoDevice, file: File) -> None:
        """``au0828_v4l2_close()``: the last V4L2 file takes the source first (an error, DVB
        holding the tuner, is ignored), so that ``v4l2_fh_exit()``'s
        ``v4l_disable_media_source()``, which every close calls, then stops the pipeline and
        drops the tuner link; ``users`` goes down after both."""
        if self.dev.users == 1 and not self.dev.disconnected:
            with contextlib.suppress(KernelError):
                v4l2.v4l_enable_media_source(vdev, vdev.pipe)
        v4l2.v4l_disable_media_source(vdev)
        self.dev.users -= 1

    def ioctl(self, vdev: v4l2.VideoDevice, file: File, request: str) -> Any:
        if request == "VIDIOC_QUERYCAP":  # vidioc_querycap(): the board's name, both nodes' caps
            return {
                "driver": "au0828",
                "card": self.dev.board,
                "bus_info": self.dev.intf.udev.usb_make_path(),
                "capabilities": ANALOG_CAPS
                | v4l2.V4L2_CAP_VBI_CAPTURE
                | v4l2.V4L2_CAP_VIDEO_CAPTURE
                | v4l2.V4L2_CAP_DEVICE_CAPS,
            }
        if request in ("VIDIOC_G_TUNER", "VIDIOC_STREAMON"):
            v4l2.v4l_enable_media_source(vdev, vdev.pipe)
            return 0
        if request == "VIDIOC_STREAMOFF":  # stops the stream; the source stays taken until close
            return 0
        return super().ioctl(vdev, file, request)


class Au0828Driver(UsbDriver):
    name = "au0828"

    def __init__(self, kernel: Kernel, module: Any) -> None:
        super().__init__(kernel, module)
        self.devs: list[Au0828Dev] = []

    def match(self, intf: UsbInterface) -> bool:
        d = intf.udev.desc
        return (d.vendor, d.product_id) in BOARDS

    # -- probe -----------------------------------------------------------------------------

    def probe(self, intf: UsbInterface) -> None:
        if intf.desc.number != 0:
            raise KernelError(errno.ENODEV, f"au0828: interface {intf.desc.number} not claimed", intf.name)
        udev = intf.udev
        dev = Au0828Dev(intf, BOARDS[(udev.desc.vendor, udev.desc.product_id)])
        try:  # au0828_media_device_init()
            dev.media_dev = self.k.allocator.media_device_usb_allocate(udev, "au0828", self.module)
        except KernelError:
            self.log.pr_err("au0828: au0828_usb_probe() au0828_media_device_init failed")
            raise
        self.devs.append(dev)
        try:
            self._probe_rest(dev)
        except KernelError:
            intf.intfdata = dev
            self.disconnect(intf)  # "done: if (retval < 0) au0828_usb_disconnect(interface)"
            raise

    def _probe_rest(self, dev: Au0828Dev) -> None:
        intf = dev.intf
        mdev = dev.media_dev
        dev.v4l2_dev = v4l2.V4l2Device(self.k, intf, mdev, lambda: self._v4l2_release(dev), dev)
        bus = self.k.i2c_buses.get()
        dev.i2c_bus = -1 if bus is None else bus
        dev.decoder = Entity(
            f"au8522 {bus}-0047",
            MEDIA_ENT_F_ATV_DECODER,
            (sink(PAD_SIGNAL_ANALOG), source(PAD_SIGNAL_DV), source(PAD_SIGNAL_AUDIO)),
            owner=dev,
        )
        dev.tuner = Entity(
            f"tuner {bus}-0061",
            MEDIA_ENT_F_TUNER,
            (sink(PAD_SIGNAL_ANALOG), source(PAD_SIGNAL_ANALOG), source(PAD_SIGNAL_AUDIO)),
            owner=dev,
        )
        dev.v4l2_dev.register_subdev(dev.decoder)
        dev.v4l2_dev.register_subdev(dev.tuner)
        intf.intfdata = dev
        self._analog_register(dev)
        try:
            self._dvb_register(dev)
        except KernelError:  # logged, not fatal: the analog side works without DVB
            self.log.pr_err("au0828: au0828_usb_probe() au0828_dvb_register failed")
        self.log.pr_info(f"au0828: Registered device AU0828 [{dev.board}]")
        self._media_device_register(dev)

    def _analog_register(self, dev: Au0828Dev) -> None:
        assert dev.v4l2_dev is not None and dev.media_dev is not None
        for name, function in CONNECTORS:
            ent = Entity(name, function, (source(),), flags=MEDIA_ENT_FL_CONNECTOR, owner=dev)
            dev.media_dev.media_device_register_entity(ent)
            dev.input_ent.append(ent)
        ops = Au0828VideoOps(self, dev)
        video_caps, vbi_caps = ANALOG_CAPS | v4l2.V4L2_CAP_VIDEO_CAPTURE, ANALOG_CAPS | v4l2.V4L2_CAP_VBI_CAPTURE
        dev.vdev = v4l2.video_register_device(dev.v4l2_dev, "au0828a video", "video", ops, self.module, video_caps)
        dev.vbi_dev = v4l2.video_register_device(dev.v4l2_dev, "au0828a vbi", "vbi", ops, self.module, vbi_caps)
        try:
            v4l2.v4l2_mc_create_media_graph(dev.media_dev)
        except KernelError:
            self.log.pr_err("au0828: au0828_analog_register() au0282_dev_register failed to create graph")
            raise

    def _dvb_register(self, dev: Au0828Dev) -> None:
        adapter = dvb.dvb_register_adapter(self.k, "au0828", self.module, dev.intf.udev, dev.media_dev, dev)
        try:
            dvb.dvb_register_frontend(adapter, AU8522_XC5000)
            dvb.dvb_register_device(adapter, "demux", "dvb-demux", demux_sink_pads=256)
            dvb.dvb_register_device(adapter, "dvr", demux_sink_pads=256)
            dvb.dvb_register_device(adapter, "net")
            dvb.dvb_create_media_graph(adapter)
        except KernelError:
            dvb.dvb_unregister_adapter(adapter)  # the unwind order of au0828_dvb_register()
            raise
        dev.adapter = adapter

    def _media_device_register(self, dev: Au0828Dev) -> None:
        mdev = dev.media_dev
        assert mdev is not None
        if not mdev.registered:
            mdev.media_device_register(self.module)
        else:
            # "audio driver registered the device and there is no entity_notify to be
            # called when new entities are added. Invoke it now."
            self._graph_notify(None, dev)
        demod = None
        with mdev.graph_mutex:
            for entity in mdev.entities.values():
                if entity.function == MEDIA_ENT_F_TUNER:
                    dev.tuner = entity
                elif entity.function == MEDIA_ENT_F_ATV_DECODER:
                    dev.decoder = entity
                elif entity.function == MEDIA_ENT_F_DTV_DEMOD:
                    demod = entity
            if dev.tuner is not None:
                for link in list(dev.tuner.links):
                    if not link.is_backlink and link.sink.entity in (demod, dev.decoder):  # type: ignore[union-attr]
                        mdev.media_entity_setup_link(link, 0)
        dev.notify = EntityNotify(self._graph_notify, dev)
        mdev.media_device_register_entity_notify(dev.notify)
        with mdev.graph_mutex:
            mdev.source_priv = dev
            mdev.enable_source = self._enable_source
            mdev.disable_source = self._disable_source

    def _graph_notify(self, new: Entity | None, dev: Au0828Dev) -> None:
        """``au0828_media_graph_notify()``: link the decoder's audio pad to the mixer."""
        mdev = dev.media_dev
        if mdev is None:
            return
        if new is None:
            mixer = mdev.find_entity(MEDIA_ENT_F_AUDIO_MIXER)
            decoder = mdev.find_entity(MEDIA_ENT_F_ATV_DECODER)
        elif new.function == MEDIA_ENT_F_AUDIO_MIXER:
            mixer, decoder = new, dev.decoder
        elif new.function == MEDIA_ENT_F_ATV_DECODER:
            mixer, decoder = mdev.find_entity(MEDIA_ENT_F_AUDIO_MIXER), new
        else:
            return
        if mixer is None or decoder is None or decoder.mdev is not mdev:
            return
        try:
            pad = mdev.media_get_pad_index(decoder, False, PAD_SIGNAL_AUDIO)
            mdev.media_create_pad_link(decoder, pad, mixer, 0, MEDIA_LNK_FL_ENABLED)
        except KernelError as exc:
            self.log.dev_err(dev_str(dev.intf), f"Mixer Pad Link Create Error: {-(exc.errno or 0)}")

    # -- tuner arbitration (callers hold graph_mutex) ---------------------------------------

    def _enable_source(self, entity: Entity, pipe: object) -> None:
        mdev = entity.mdev
        if mdev is None:
            raise KernelError(errno.ENODEV, "enable_source: entity not registered")
        dev: Au0828Dev = mdev.source_priv
        if entity.function == MEDIA_ENT_F_DTV_DEMOD:
            sink_ent, find_source = entity, dev.tuner
        else:
            if dev.decoder is None:  # "Analog isn't configured or register failed"
                raise KernelError(errno.ENODEV, "enable_source: no decoder")
            sink_ent, find_source = dev.decoder, dev.tuner  # input is the TV tuner
        owner = dev.active_link_owner
        if dev.active_link is not None and owner is not None:
            if owner is entity:
                return  # "%s already owns the tuner"
            if owner.function in SHAREABLE and entity.function in SHAREABLE:
                dev.active_link_shared = True
                dev.active_link_user, dev.active_link_user_pipe = entity, pipe
                return  # "%s owns the tuner %s can share!"
            raise KernelError(errno.EBUSY, f"{owner.name} owns the tuner")
        found = next(
            (
                ln
                for ln in sink_ent.links
                if ln.sink.entity is sink_ent and ln.source.entity is find_source  # type: ignore[union-attr]
            ),
            None,
        )
        if found is None:
            raise KernelError(errno.ENODEV, "enable_source: no link from the tuner")
        mdev.media_entity_setup_link(found, MEDIA_LNK_FL_ENABLED)
        if entity.pads:
            try:
                mdev.media_pipeline_start(entity.pads[0], pipe)
            except KernelError as exc:
                self.log.pr_err(f"au0828: Start Pipeline: {find_source.name}->{entity.name} Error {-(exc.errno or 0)}")
                mdev.media_entity_setup_link(found, 0)
                return  # as the driver does: 0 once the link is off again, and no active link
        dev.active_link, dev.active_link_owner = found, entity
        dev.active_source, dev.active_sink = find_source, sink_ent
        assert find_source is not None
        self.log.pr_info(f"au0828: Enabled Source: {find_source.name}->{sink_ent.name}->{entity.name} Ret 0")

    def _disable_source(self, entity: Entity) -> None:
        mdev = entity.mdev
        dev: Au0828Dev | None = mdev.source_priv if mdev is not None else None
        if dev is None or dev.active_link is None or dev.active_link_owner is None:
            return
        link = dev.active_link
        if link.sink.entity is not dev.active_sink or link.source.entity is not dev.active_source:  # type: ignore[union-attr]
            return
        owner = dev.active_link_owner
        owner_is_audio = owner.function == MEDIA_ENT_F_AUDIO_CAPTURE
        if dev.active_link_shared:
            if owner is not entity:
                if owner_is_audio and dev.users > 1:
                    return
                dev.active_link_user, dev.active_link_user_pipe, dev.active_link_shared = None, None, False
                return
            if not owner_is_audio and dev.users > 1:
                return
            # the sharer takes the tuner over: its pipeline instead of the owner's, the link stays
            assert mdev is not None and dev.active_link_user is not None
            if owner.pads:
                mdev.media_pipeline_stop(owner.pads[0])
            try:
                if dev.active_link_user.pads:
                    mdev.media_pipeline_start(dev.active_link_user.pads[0], dev.active_link_user_pipe)
            except KernelError as exc:
                source = dev.active_source.name if dev.active_source is not None else "?"
                self.log.pr_err(f"au0828: Start Pipeline: {source}->{dev.active_link_user.name} {-(exc.errno or 0)}")
            else:
                dev.active_link_owner, dev.active_link_user = dev.active_link_user, None
                dev.active_link_user_pipe, dev.active_link_shared = None, False
                return
        else:
            if not owner_is_audio and dev.users > 1:
                return
            if owner is not entity:
                return
            assert mdev is not None
            if owner.pads:
                mdev.media_pipeline_stop(owner.pads[0])
        assert dev.active_source is not None and dev.active_sink is not None
        mdev.media_entity_setup_link(link, 0)
        self.log.pr_info(
            f"au0828: Disabled Source: {dev.active_source.name}->{dev.active_sink.name}->{owner.name} Ret 0"
        )
        dev.active_link = dev.active_link_owner = dev.active_source = dev.active_sink = None
        dev.active_link_shared, dev.active_link_user, dev.active_link_user_pipe = False, None, None

    # -- disconnect and release ------------------------------------------------------------

    def disconnect(self, intf: UsbInterface) -> None:
        dev = intf.intfdata
        if not isinstance(dev, Au0828Dev):
            return
        dev.disconnected = True
        dev.disconnected_at = self.k.events.now()
        if dev.adapter is not None:
            dvb.dvb_unregister_adapter(dev.adapter)
            dev.adapter = None
        intf.intfdata = None
        # au0828_analog_unregister(): nodes go now, the rest at the v4l2_device's release
        for vdev in (dev.vdev, dev.vbi_dev):
            if vdev is not None:
                v4l2.video_unregister_device(vdev)
        if dev.v4l2_dev is not None:
            dev.v4l2_dev.put()
        else:  # probe failed before v4l2_device_register(): release at once
            self._unregister_media_device(dev)
            dev.alive = False
            self.devs.remove(dev)

    def _v4l2_release(self, dev: Au0828Dev) -> None:
        """``au0828_usb_v4l2_release()`` -> v4l2_device_unregister, connectors, usb_release."""
        assert dev.v4l2_dev is not None
        dev.v4l2_dev.unregister()
        mdev = dev.media_dev
        for ent in dev.input_ent:
            if mdev is not None:
                mdev.media_device_unregister_entity(ent)
        dev.input_ent.clear()
        self._unregister_media_device(dev)
        if dev.i2c_bus >= 0:
            self.k.i2c_buses.put(dev.i2c_bus)
        dev.alive = False
        self.devs.remove(dev)

    def _unregister_media_device(self, dev: Au0828Dev) -> None:
        mdev = dev.media_dev
        if mdev is None or not mdev.registered:
            return  # mainline: no media_device_delete() here, the reference is kept
        with mdev.graph_mutex:
            for notify in list(mdev.entity_notify):
                if notify.notify == self._graph_notify:
                    mdev.media_device_unregister_entity_notify(notify)
            mdev.source_priv = mdev.enable_source = mdev.disable_source = None
        self.k.allocator.media_device_delete(mdev, "au0828", self.module)
        dev.media_dev = None

    def holders(self) -> list[tuple[MediaDevice, Holder]]:
        out = []
        for dev in self.devs:
            if dev.media_dev is None:
                continue
            if not dev.disconnected:
                held = Holder(self.name, self.module_name, dev.intf.name, "bound", "bound")
            else:
                files = dev.open_files(self.k)
                nodes = ", ".join(sorted({f.path for f in files})) or "an open V4L2 file"
                held = Holder(
                    self.name,
                    self.module_name,
                    dev.intf.name,
                    "deferred",
                    f"unbound, kept by open {nodes}",
                    dev.disconnected_at,
                    tuple(f.fd for f in files),
                )
            out.append((dev.media_dev, held))
        return out
