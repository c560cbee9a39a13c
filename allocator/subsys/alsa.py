"""ALSA core pieces: a card with its control node and PCM nodes (sound/core).

Card numbers are first free of 32; nodes are ``/dev/snd/controlC<card>`` and
``/dev/snd/pcmC<card>D<dev>c|p`` with the static minors of sound/core/sound.c (card * 32,
+16 playback, +24 capture).  Opening any of them pins ``snd`` and the card's module
(``try_module_get(card->module)``).  ``snd_card_disconnect`` removes the nodes at once; the
card itself, and its number, are freed when its last file is closed
(``snd_card_free_when_closed``).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from ..device import Device
from ..errors import KernelError
from ..files import File, Fops, enotty
from ..module import Module

if TYPE_CHECKING:
    from ..kernel import Kernel

SND_MAJOR = 116


class PcmOps:
    def open(self, pcm: Pcm, file: File) -> None:
        """Raise to refuse the open."""

    def release(self, pcm: Pcm, file: File) -> None:
        """After the last close of this substream."""

    def ioctl(self, pcm: Pcm, file: File, request: str) -> Any:
        raise enotty(file, request)


class Pcm:
    def __init__(self, card: SndCard, device: int, stream: str, name: str, ops: PcmOps) -> None:
        self.card = card
        self.stream = stream  # "c" capture, "p" playback
        self.name = name
        self.ops = ops
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
    def __init__(self, k: Kernel, number: int, parent: Device, module: Module | None, shortname: str):
        self.k = k
        self.number = number
        self.module = module
        self.shortname = shortname
        self.mixername = ""
        self.device = Device(
            f"card{number}",
            parent,
            "sound",
            dirname=f"sound/card{number}",
            attrs={"id": shortname[:15], "number": str(number)},
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
            card.open_files += 1

        def do_release(file: File) -> None:
            if pcm is not None:
                pcm.ops.release(pcm, file)
            card.open_files -= 1
            card.maybe_free()

        def do_ioctl(file: File, request: str) -> Any:
            if card.disconnected:
                raise KernelError(errno.ENODEV, f"{request} on {file.path}: card disconnected")
            if pcm is None:
                raise enotty(file, request)
            return pcm.ops.ioctl(pcm, file, request)

        return Fops((self.k.module("snd"), self.module), open=do_open, release=do_release, ioctl=do_ioctl)

    def register(self) -> None:
        """``snd_card_register()``: the card, its control node and PCM nodes appear."""
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


def snd_card_new(k: Kernel, parent: Device, module: Module | None, shortname: str) -> SndCard:
    number = k.snd_cards.get()
    if number is None:
        raise KernelError(errno.ENODEV, "no available usb audio device")
    return SndCard(k, number, parent, module, shortname)
