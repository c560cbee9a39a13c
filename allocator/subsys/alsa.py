"""ALSA core pieces: a card with its control node and PCM nodes (sound/core).

Card numbers are first free of 32; nodes are ``/dev/snd/controlC<card>`` and
``/dev/snd/pcmC<card>D<dev>c|p`` with the static minors of sound/core/sound.c (card * 32,
+16 playback, +24 capture).  Opening any of them pins ``snd`` and the card's module
(``try_module_get(card->module)``).  ``snd_card_disconnect`` removes the nodes at once; the
card itself, and its number, are freed when its last file is closed
(``snd_card_free_when_closed``).

A card carries the names ``SNDRV_CTL_IOCTL_CARD_INFO`` reports (driver, shortname, longname,
mixername, components, set by its driver) and, from ``snd_card_register()``, its id: unless
the driver set one, the last word of the shortname with only its letters and digits kept
(``snd_card_set_id_no_lock``), made unique with ``_1``, ``_2``...  Its control node answers
the uapi's control ioctls (``allocator.subsys.alsa_ioctl``).
"""

from __future__ import annotations

import errno
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..chrdev import UserMemory
from ..device import Device
from ..errors import KernelError
from ..files import File, Fops, enotty
from ..module import Module

if TYPE_CHECKING:
    from ..kernel import Kernel
    from ..mc.ioctl import Reply

SND_MAJOR = 116
SNDRV_CARDS = 32
SNDRV_PCM_CLASS_GENERIC = 0
SNDRV_PCM_SUBCLASS_GENERIC_MIX = 0
#: snd_info_check_reserved_words(): ids a card may not take (they name /proc/asound entries)
RESERVED_IDS = ("version", "meminfo", "memdebug", "detect", "devices", "oss", "cards", "timers", "synth", "pcm", "seq")


class PcmOps:
    def open(self, pcm: Pcm, file: File) -> None:
        """Raise to refuse the open."""

    def release(self, pcm: Pcm, file: File) -> None:
        """After the last close of this substream."""

    def ioctl(self, pcm: Pcm, file: File, request: str) -> Any:
        raise enotty(file, request)


class Pcm:
    """One stream of a PCM device with its one substream (``subdevice #0``): snd-usb-audio
    creates a substream per stream direction; ``opened`` counts its open files."""

    def __init__(self, card: SndCard, device: int, stream: str, name: str, ops: PcmOps) -> None:
        self.card = card
        self.number = device
        self.stream = stream  # "c" capture, "p" playback
        self.id = name  # snd_pcm_new()'s id: the drivers here give it the name
        self.name = name
        self.ops = ops
        self.dev_class = SNDRV_PCM_CLASS_GENERIC
        self.dev_subclass = SNDRV_PCM_SUBCLASS_GENERIC_MIX
        self.substreams = 1
        self.opened = 0
        node = f"pcmC{card.number}D{device}{stream}"
        self.device = Device(
            node,
            card.device,
            "sound",
            devt=(SND_MAJOR, card.number * 32 + (24 if stream == "c" else 16) + device),
            devname=f"snd/{node}",
        )
        self.private: Any = None


class SndCard:
    """``struct snd_card``: its number, names, id, control node and PCM streams."""

    def __init__(self, k: Kernel, number: int, parent: Device, module: Module | None):
        self.k = k
        self.number = number
        self.module = module
        self.id = ""  # set by snd_card_register() unless the driver gave one
        self.driver = ""
        self.shortname = ""  # the driver names the card after snd_card_new()
        self.longname = ""
        self.mixername = ""
        self.components = ""
        self.device = Device(
            f"card{number}",
            parent,
            "sound",
            dirname=f"sound/card{number}",
            attrs={"number": str(number)},
        )
        self.control = Device(
            f"controlC{number}", self.device, "sound", devt=(SND_MAJOR, number * 32), devname=f"snd/controlC{number}"
        )
        self.pcms: list[Pcm] = []
        self.open_files = 0
        self.disconnected = False
        self.free_pending = False

    def fops(self, pcm: Pcm | None = None) -> Fops:
        card = self

        def do_open(file: File) -> None:
            if card.disconnected:
                raise KernelError(errno.ENODEV, f"open {file.path}: card disconnected")
            if pcm is not None:
                pcm.ops.open(pcm, file)
                pcm.opened += 1
            card.open_files += 1

        def do_release(file: File) -> None:
            if pcm is not None:
                pcm.ops.release(pcm, file)
                pcm.opened -= 1
            card.open_files -= 1
            card.maybe_free()

        def do_ioctl(file: File, request: str) -> Any:
            if card.disconnected:
                raise KernelError(errno.ENODEV, f"{request} on {file.path}: card disconnected")
            if pcm is None:
                raise enotty(file, request)
            return pcm.ops.ioctl(pcm, file, request)

        def unlocked_ioctl(file: File, request: int, arg: bytes | None, user: UserMemory) -> Reply:
            from .alsa_ioctl import snd_ctl_ioctl

            return snd_ctl_ioctl(card, request, arg)

        owners = (self.k.module("snd"), self.module)
        control = unlocked_ioctl if pcm is None else None  # the PCM nodes' uapi is not modelled
        return Fops(owners, open=do_open, release=do_release, ioctl=do_ioctl, unlocked_ioctl=control)

    def register(self) -> None:
        """``snd_card_register()``: the card gets its id, then it, its control node and PCM
        nodes appear."""
        if not self.id:
            source = self.shortname or self.longname
            self.id = snd_card_set_id(source, _last_word(source), list(self.k.devices.devices.values()))
        self.device.attrs["id"] = self.id
        self.k.devices.device_add(self.device)
        self.k.files.register(self.control, self.fops())
        self.k.devices.device_add(self.control)
        for pcm in self.pcms:
            self.k.files.register(pcm.device, self.fops(pcm))
            self.k.devices.device_add(pcm.device)

    def add_pcm(self, device: int, stream: str, name: str, ops: PcmOps) -> Pcm:
        pcm = Pcm(self, device, stream, name, ops)
        self.pcms.append(pcm)
        return pcm

    def disconnect(self) -> None:
        """``snd_card_disconnect()``: nodes go now; open files see ENODEV."""
        self.disconnected = True
        for dev in (*(p.device for p in self.pcms), self.control, self.device):
            self.k.devices.device_del(dev)

    def free_when_closed(self) -> None:
        self.free_pending = True
        self.maybe_free()

    def maybe_free(self) -> None:
        if self.free_pending and self.open_files == 0:
            self.free_pending = False
            self.k.snd_cards.put(self.number)

    def pcm_next(self, device: int) -> int:
        """``snd_pcm_next()``: the first PCM device of this card numbered above ``device``, -1
        when there is none."""
        later = [pcm.number for pcm in self.pcms if pcm.number > device]
        return min(later, default=-1)

    def pcm_stream(self, device: int, stream: str) -> tuple[bool, Pcm | None]:
        """Whether PCM device ``device`` exists, and its stream ``stream`` ("c"/"p") if any."""
        found = [pcm for pcm in self.pcms if pcm.number == device]
        return bool(found), next((pcm for pcm in found if pcm.stream == stream), None)


def snd_card_new(k: Kernel, parent: Device, module: Module | None) -> SndCard:
    number = k.snd_cards.get()
    if number is None:
        raise KernelError(errno.ENODEV, "no available usb audio device")
    return SndCard(k, number, parent, module)


def _last_word(name: str) -> str:
    """``retrieve_id_from_card_name()``: from the last whitespace followed by a letter or
    digit (the whole name when there is none)."""
    start = 0
    for i in range(len(name) - 1):
        if name[i].isspace() and name[i + 1].isascii() and name[i + 1].isalnum():
            start = i + 1
    return name[start:]


def snd_card_set_id(src: str, nid: str, devices: Iterable[Device]) -> str:
    """``snd_card_set_id_no_lock()``: the letters and digits of ``nid`` (15 at most; one that
    starts with a digit gets ``src``'s first letter, or ``D``, in front), ``Default`` when
    nothing is left or it starts with "card", and a ``_N`` suffix (hex, within the 15) while
    a registered card or a reserved word has it."""
    taken = {d.attrs.get("id") for d in devices if d.subsystem == "sound" and d.name.startswith("card")}

    def ok(candidate: str) -> bool:
        return candidate not in RESERVED_IDS and candidate not in taken

    kept = "".join(c for c in nid if c.isascii() and c.isalnum())
    prefix = (src[0] if src[:1].isascii() and src[:1].isalpha() else "D") if kept[:1].isdigit() else ""
    base = (prefix + kept)[:15]
    for candidate_base in (base, "Default"):
        if not candidate_base or candidate_base.startswith("card"):
            candidate_base = "Default"
        candidate = candidate_base
        for loop in range(SNDRV_CARDS):
            if ok(candidate):
                return candidate
            suffix = f"_{loop + 1:X}"
            candidate = candidate_base[: 15 - len(suffix)] + suffix
    return candidate
