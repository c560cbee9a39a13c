"""DVB core pieces (drivers/media/dvb-core/dvbdev.c) that create nodes and graph objects.

``dvb_register_device`` creates, in this order: the media entity (a frontend is one DTV_DEMOD
entity with a sink and a source pad; a demux first registers its ``demux-tsout #N`` entities
and then the ``dvb-demux`` entity with one sink and N source pads; a DVR only its
``dvr-tsout #N`` entities; a net device none), the interface devnode, the interface link
(ENABLED|IMMUTABLE) when there is an entity, then the ``dvbA.typeN`` device and its node
``/dev/dvb/adapterA/typeN``.  ``dvb_create_media_graph`` links tuner -> demod -> demux and the
demux's source pad k to both ``demux-tsout #k-1`` and ``dvr-tsout #k-1`` (disabled), then the
FE interface to the tuner and the DVR/DEMUX interfaces to their ts-outs.

Deliberate difference: minors are handed out first-free (CONFIG_DVB_DYNAMIC_MINORS, as
distribution kernels build it).  Opening the frontend read-write asks ``enable_source`` for
the tuner (dvb_frontend_open); a refusal fails the open: "Tuner is busy. Error -16".

A frontend (``dvb_register_frontend``) carries the ``dvb_frontend_ops`` its demodulator and
tuner drivers attached (name, frequency and symbol-rate ranges, caps, delivery systems) and
the property cache's delivery system (the first supported one, as ``dvb_frontend_clear_cache``
sets it); its node answers FE_GET_INFO and FE_GET_PROPERTY (``allocator.subsys.dvb_ioctl``).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..chrdev import UserMemory
from ..device import Device, dev_str
from ..errors import KernelError
from ..files import File, Fops, enotty
from ..mc.device import MediaDevice
from ..mc.entity import Entity, Interface, sink, source
from ..mc.uapi import (
    MEDIA_ENT_F_DTV_DEMOD,
    MEDIA_ENT_F_IO_DTV,
    MEDIA_ENT_F_TS_DEMUX,
    MEDIA_ENT_F_TUNER,
    MEDIA_INTF_T_DVB_DEMUX,
    MEDIA_INTF_T_DVB_DVR,
    MEDIA_INTF_T_DVB_FE,
    MEDIA_INTF_T_DVB_NET,
    MEDIA_LNK_FL_ENABLED,
    MEDIA_LNK_FL_IMMUTABLE,
    PAD_SIGNAL_ANALOG,
)
from ..module import Module

if TYPE_CHECKING:
    from ..kernel import Kernel
    from ..mc.ioctl import Reply

DVB_MAJOR = 212

DVR_TSOUT = "dvr-tsout"
DEMUX_TSOUT = "demux-tsout"
INTF_TYPES = {
    "frontend": MEDIA_INTF_T_DVB_FE,
    "demux": MEDIA_INTF_T_DVB_DEMUX,
    "dvr": MEDIA_INTF_T_DVB_DVR,
    "net": MEDIA_INTF_T_DVB_NET,
}

# include/uapi/linux/dvb/frontend.h: delivery systems, DVBv3 types, caps
SYS_UNDEFINED, SYS_DVBC_ANNEX_A, SYS_DVBC_ANNEX_B, SYS_DVBT, SYS_DSS, SYS_DVBS, SYS_DVBS2 = range(7)
SYS_DVBH, SYS_ISDBT, SYS_ISDBS, SYS_ISDBC, SYS_ATSC, SYS_ATSCMH, SYS_DTMB = range(7, 14)
SYS_CMMB, SYS_DAB, SYS_DVBT2, SYS_TURBO, SYS_DVBC_ANNEX_C, SYS_DVBC2 = range(14, 20)
FE_QPSK, FE_QAM, FE_OFDM, FE_ATSC = range(4)
FE_CAN_INVERSION_AUTO = 0x1
FE_CAN_QAM_64 = 0x2000
FE_CAN_QAM_256 = 0x8000
FE_CAN_8VSB = 0x200000
#: dvbv3_type(): the DVBv3 type FE_GET_INFO reports for the cached delivery system
DVBV3_TYPES = {
    **dict.fromkeys((SYS_DVBC_ANNEX_A, SYS_DVBC_ANNEX_C, SYS_ISDBC), FE_QAM),
    **dict.fromkeys((SYS_DVBS, SYS_DVBS2, SYS_TURBO, SYS_ISDBS, SYS_DSS), FE_QPSK),
    **dict.fromkeys((SYS_DVBT, SYS_DVBT2, SYS_ISDBT, SYS_DTMB), FE_OFDM),
    **dict.fromkeys((SYS_ATSC, SYS_ATSCMH, SYS_DVBC_ANNEX_B), FE_ATSC),
}
SATELLITE = frozenset((SYS_DSS, SYS_DVBS, SYS_DVBS2, SYS_TURBO, SYS_ISDBS))  # frequencies in kHz
KHZ = 1000


@dataclass(frozen=True)
class DvbFrontendOps:
    """What ``dvb_frontend_ops`` says to userspace: the demodulator's ``info`` and
    ``delsys``, and the attached tuner's ``tuner_ops.info`` frequency range and step."""

    name: str
    delsys: tuple[int, ...]
    frequency_min_hz: int
    frequency_max_hz: int
    frequency_stepsize_hz: int
    caps: int
    frequency_tolerance_hz: int = 0
    symbol_rate_min: int = 0
    symbol_rate_max: int = 0
    symbol_rate_tolerance: int = 0
    tuner_min_hz: int = 0
    tuner_max_hz: int = 0
    tuner_step_hz: int = 0


class DvbFrontend:
    """``struct dvb_frontend``: its ops, its property cache's delivery system, and whether it
    is gone (``fe->exit == DVB_FE_DEVICE_REMOVED``: every ioctl then gets ENODEV)."""

    def __init__(self, ops: DvbFrontendOps) -> None:
        self.ops = ops
        self.delivery_system = ops.delsys[0] if ops.delsys else SYS_UNDEFINED
        self.removed = False

    def frequency_limits(self) -> tuple[int, int, int]:
        """``dvb_frontend_get_frequency_limits()``: (min, max, tolerance), the narrower of
        the demodulator's and the tuner's range, in kHz for a satellite system."""
        ops = self.ops
        low = max(ops.frequency_min_hz, ops.tuner_min_hz)
        if ops.frequency_max_hz == 0 or ops.tuner_max_hz == 0:
            high = ops.frequency_max_hz or ops.tuner_max_hz
        else:
            high = min(ops.frequency_max_hz, ops.tuner_max_hz)
        if self.delivery_system in SATELLITE:
            return low // KHZ, high // KHZ, ops.frequency_tolerance_hz // KHZ
        return low, high, ops.frequency_tolerance_hz

    def stepsize(self) -> int:
        """``dvb_frontend_get_stepsize()``: the larger of the two steps (kHz for satellite)."""
        step = max(self.ops.frequency_stepsize_hz, self.ops.tuner_step_hz)
        return step // KHZ if self.delivery_system in SATELLITE else step


class DvbAdapter:
    def __init__(
        self,
        k: Kernel,
        num: int,
        name: str,
        module: Module | None,
        parent: Device,
        mdev: MediaDevice | None,
        owner: object,
    ) -> None:
        self.k = k
        self.owner = owner
        self.num = num
        self.name = name
        self.module = module
        self.parent = parent
        self.mdev = mdev
        self.devices: list[DvbDevice] = []
        self.frontend_users = 0


class DvbDevice:
    def __init__(self, adapter: DvbAdapter, dtype: str, minor: int) -> None:
        self.adapter = adapter
        self.type = dtype
        self.minor = minor
        self.entity: Entity | None = None
        self.tsout_entities: list[Entity] = []
        self.intf_devnode: Interface | None = None
        self.device: Device | None = None
        self.pipe = object()
        self.fe: DvbFrontend | None = None  # a frontend's dvb_frontend


def dvb_register_adapter(
    k: Kernel, name: str, module: Module | None, parent: Device, mdev: MediaDevice | None, owner: object
) -> DvbAdapter:
    num = k.dvb_adapters.get()
    if num is None:  # all CONFIG_DVB_MAX_ADAPTERS numbers taken
        k.printk.pr_err("dvbdev: DVB: no free adapter number")
        raise KernelError(errno.ENFILE, "dvbdev: no free adapter number")
    k.printk.pr_info(f"dvbdev: DVB: registering new adapter ({name})")
    return DvbAdapter(k, num, name, module, parent, mdev, owner)


def dvb_register_frontend(adapter: DvbAdapter, ops: DvbFrontendOps) -> DvbDevice:
    """``dvb_register_frontend()``: the frontend node, its entity named after the ops, and the
    property cache cleared to the first delivery system."""
    return dvb_register_device(adapter, "frontend", ops.name, fe=DvbFrontend(ops))


def dvb_register_device(
    adapter: DvbAdapter, dtype: str, entity_name: str = "", demux_sink_pads: int = 0, fe: DvbFrontend | None = None
) -> DvbDevice:
    k = adapter.k
    minor = k.dvb_minors.get()
    if minor is None:
        raise KernelError(errno.ENFILE, "dvbdev: no free minor")
    dvbdev = DvbDevice(adapter, dtype, minor)
    dvbdev.fe = fe
    mdev = adapter.mdev
    if mdev is not None:
        _create_media_entity(dvbdev, mdev, entity_name, demux_sink_pads)
        dvbdev.intf_devnode = mdev.media_devnode_create(INTF_TYPES[dtype], 0, DVB_MAJOR, minor)
        if dvbdev.entity is not None:
            mdev.media_create_intf_link(
                dvbdev.entity, dvbdev.intf_devnode, MEDIA_LNK_FL_ENABLED | MEDIA_LNK_FL_IMMUTABLE
            )
    name = f"dvb{adapter.num}.{dtype}0"
    dvbdev.device = Device(
        name,
        adapter.parent,
        "dvb",
        dirname=f"dvb/{name}",
        devt=(DVB_MAJOR, minor),
        devname=f"dvb/adapter{adapter.num}/{dtype}0",
        uevent_env={"DVB_ADAPTER_NUM": str(adapter.num), "DVB_DEVICE_TYPE": dtype, "DVB_DEVICE_NUM": "0"},
    )
    k.files.register(dvbdev.device, _dvb_fops(dvbdev))
    k.devices.device_add(dvbdev.device)
    adapter.devices.append(dvbdev)
    return dvbdev


def _create_media_entity(dvbdev: DvbDevice, mdev: MediaDevice, name: str, demux_sink_pads: int) -> None:
    owner = dvbdev.adapter.owner
    if dvbdev.type == "frontend":
        dvbdev.entity = Entity(name, MEDIA_ENT_F_DTV_DEMOD, (sink(), source()), owner=owner)
    elif dvbdev.type in ("demux", "dvr"):
        prefix = DEMUX_TSOUT if dvbdev.type == "demux" else DVR_TSOUT
        for i in range(demux_sink_pads):
            tsout = Entity(f"{prefix} #{i}", MEDIA_ENT_F_IO_DTV, (sink(),), owner=owner)
            mdev.media_device_register_entity(tsout)
            dvbdev.tsout_entities.append(tsout)
        if dvbdev.type == "demux":
            pads = (sink(), *(source() for _ in range(demux_sink_pads)))
            dvbdev.entity = Entity(name or "dvb-demux", MEDIA_ENT_F_TS_DEMUX, pads, owner=owner)
    if dvbdev.entity is not None:  # entity->info.dev stays 0:0: dvbdev.c no longer fills it in
        mdev.media_device_register_entity(dvbdev.entity)


def _dvb_fops(dvbdev: DvbDevice) -> Fops:
    adapter = dvbdev.adapter

    def do_open(file: File) -> None:
        if dvbdev.type != "frontend":
            return
        mdev = adapter.mdev
        if adapter.frontend_users == 0 and mdev is not None and dvbdev.entity is not None:
            with mdev.graph_mutex:
                if mdev.enable_source is not None:
                    try:
                        mdev.enable_source(dvbdev.entity, dvbdev.pipe)
                    except KernelError as exc:
                        code = exc.errno or errno.EBUSY
                        where = dev_str(dvbdev.device) if dvbdev.device else "dvb"
                        adapter.k.printk.dev_err(where, f"Tuner is busy. Error {-code}")
                        raise
        adapter.frontend_users += 1

    def do_release(file: File) -> None:
        if dvbdev.type != "frontend":
            return
        adapter.frontend_users -= 1
        mdev = adapter.mdev
        if adapter.frontend_users == 0 and mdev is not None and dvbdev.entity is not None:
            with mdev.graph_mutex:
                if mdev.disable_source is not None and dvbdev.entity.mdev is mdev:
                    mdev.disable_source(dvbdev.entity)

    def do_ioctl(file: File, request: str) -> Any:
        raise enotty(file, request)

    fe = dvbdev.fe

    def unlocked_ioctl(file: File, request: int, arg: bytes | None, user: UserMemory) -> Reply:
        from .dvb_ioctl import dvb_frontend_ioctl

        assert fe is not None
        return dvb_frontend_ioctl(fe, request, arg, user)

    owners = (adapter.k.module("dvb_core"),)
    frontend = unlocked_ioctl if fe is not None else None  # demux, dvr, net: not modelled
    return Fops(owners, open=do_open, release=do_release, ioctl=do_ioctl, unlocked_ioctl=frontend)


def dvb_create_media_graph(adapter: DvbAdapter) -> None:
    """``dvb_create_media_graph(adap, false)``: no RF connector from the DVB side."""
    mdev = adapter.mdev
    if mdev is None:
        return
    with mdev.graph_mutex:
        entities = list(mdev.entities.values())
        interfaces = list(mdev.interfaces.values())
    last: dict[int, Entity] = {}
    counts: dict[int, int] = {}
    for entity in entities:
        last[entity.function] = entity
        counts[entity.function] = counts.get(entity.function, 0) + 1
    tuner, demod, demux = (last.get(f) for f in (MEDIA_ENT_F_TUNER, MEDIA_ENT_F_DTV_DEMOD, MEDIA_ENT_F_TS_DEMUX))
    if tuner is not None and demod is not None and counts[MEDIA_ENT_F_TUNER] == counts[MEDIA_ENT_F_DTV_DEMOD] == 1:
        pad = mdev.media_get_pad_index(tuner, False, PAD_SIGNAL_ANALOG)
        mdev.media_create_pad_link(tuner, pad, demod, 0, MEDIA_LNK_FL_ENABLED)
    if demod is not None and demux is not None:
        mdev.media_create_pad_link(demod, 1, demux, 0, MEDIA_LNK_FL_ENABLED)
    tsouts = [e for e in entities if e.function == MEDIA_ENT_F_IO_DTV]
    if demux is not None:
        dvr_pad = demux_pad = 0
        for entity in tsouts:
            if entity.name.startswith(DVR_TSOUT):
                dvr_pad += 1
                mdev.media_create_pad_link(demux, dvr_pad, entity, 0, 0)
            if entity.name.startswith(DEMUX_TSOUT):
                demux_pad += 1
                mdev.media_create_pad_link(demux, demux_pad, entity, 0, 0)
    fixed = MEDIA_LNK_FL_ENABLED | MEDIA_LNK_FL_IMMUTABLE
    for intf in interfaces:
        if intf.intf_type == MEDIA_INTF_T_DVB_FE and tuner is not None:
            mdev.media_create_intf_link(tuner, intf, fixed)
        for entity in tsouts:
            if intf.intf_type == MEDIA_INTF_T_DVB_DVR and entity.name.startswith(DVR_TSOUT):
                mdev.media_create_intf_link(entity, intf, fixed)
            if intf.intf_type == MEDIA_INTF_T_DVB_DEMUX and entity.name.startswith(DEMUX_TSOUT):
                mdev.media_create_intf_link(entity, intf, fixed)


def dvb_unregister_device(dvbdev: DvbDevice) -> None:
    """Node first, then the interface and the entities (``dvb_media_device_free``)."""
    k = dvbdev.adapter.k
    if dvbdev.fe is not None:
        dvbdev.fe.removed = True  # dvb_unregister_frontend(): fe->exit = DVB_FE_DEVICE_REMOVED
    if dvbdev.device is not None:
        k.devices.device_del(dvbdev.device)
    mdev = dvbdev.adapter.mdev
    if mdev is not None:
        if dvbdev.intf_devnode is not None and dvbdev.intf_devnode.mdev is mdev:
            mdev.media_devnode_remove(dvbdev.intf_devnode)
        for entity in (dvbdev.entity, *dvbdev.tsout_entities):
            if entity is not None:
                mdev.media_device_unregister_entity(entity)
    k.dvb_minors.put(dvbdev.minor)


def dvb_unregister_adapter(adapter: DvbAdapter) -> None:
    for dvbdev in reversed(adapter.devices):
        dvb_unregister_device(dvbdev)
    adapter.devices.clear()
    adapter.k.dvb_adapters.put(adapter.num)
