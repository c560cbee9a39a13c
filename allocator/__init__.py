"""A faithful, pure-Python model of the kernel side of shared media devices.

The Media Device Allocator API (drivers/media/mc/mc-dev-allocator.c) and everything it lives
in: modules and their refcounts, a USB bus with the driver core, the media controller core,
and the sharing behaviour of au0828 and snd-usb-audio (with uvcvideo as the contrast).  No
I/O, no UI; nothing here imports ``mdtui``.  Start with ``Kernel``.
"""

from .catalog import CATALOG
from .check import Violation
from .errors import KernelError
from .events import Event
from .kernel import Kernel

__all__ = ["CATALOG", "Event", "Kernel", "KernelError", "Violation"]
