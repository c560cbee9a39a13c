"""USB devices and interfaces as drivers/usb/core names and describes them.

Naming (usb.c, message.c): a device is ``BUS-PORT`` (``1-1``), an interface
``BUS-PORT:CONFIG.IFNUM`` (``1-1:1.0``), a root hub ``usbN``.  Attributes are kept as the
strings sysfs prints (sysfs.c): idVendor/idProduct/bcdDevice ``%04x``, class codes ``%02x``,
busnum/devnum ``%d``; manufacturer/product/serial only when the device has the string.
``usb_make_path()`` gives the bus_info a media device reports: ``usb-<hcd name>-<devpath>``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from .device import Device

USB_MAJOR = 189


@dataclass(frozen=True)
class InterfaceDesc:
    number: int
    cls: int
    subclass: int
    protocol: int = 0


@dataclass(frozen=True)
class UsbDeviceDesc:
    """What a device says about itself in its descriptors."""

    vendor: int
    product_id: int
    bcd_device: int
    product: str
    manufacturer: str
    serial: str
    interfaces: tuple[InterfaceDesc, ...]
    speed: str = "480"


class UsbDevice(Device):
    """``struct usb_device``: key of the shared media device (``&udev->dev``)."""

    __slots__ = ("bus", "catalog_name", "desc", "devnum", "interfaces", "lock", "port")

    def __init__(self, bus: UsbBus, port: int, devnum: int, desc: UsbDeviceDesc, catalog_name: str):
        name = f"{bus.busnum}-{port}"
        attrs = {
            "idVendor": f"{desc.vendor:04x}",
            "idProduct": f"{desc.product_id:04x}",
            "bcdDevice": f"{desc.bcd_device:04x}",
            "bDeviceClass": "00",
            "bNumInterfaces": f"{len(desc.interfaces):2d}",
            "bConfigurationValue": "1",
            "busnum": str(bus.busnum),
            "devnum": str(devnum),
            "devpath": str(port),
            "speed": desc.speed,
        }
        for key in ("manufacturer", "product", "serial"):
            if getattr(desc, key):
                attrs[key] = getattr(desc, key)
        super().__init__(
            name,
            bus.root_hub,
            "usb",
            devtype="usb_device",
            devt=(USB_MAJOR, (bus.busnum - 1) * 128 + devnum - 1),
            devname=f"bus/usb/{bus.busnum:03d}/{devnum:03d}",
            attrs=attrs,
            uevent_env={
                "PRODUCT": f"{desc.vendor:x}/{desc.product_id:x}/{desc.bcd_device:x}",
                "TYPE": "0/0/0",
                "BUSNUM": f"{bus.busnum:03d}",
                "DEVNUM": f"{devnum:03d}",
            },
        )
        self.bus = bus
        self.port = port
        self.devnum = devnum
        self.desc = desc
        self.catalog_name = catalog_name
        self.lock = threading.RLock()  # device_lock(): serialises probe/remove of its interfaces
        self.interfaces = [UsbInterface(self, d) for d in desc.interfaces]

    @property
    def product(self) -> str:
        return self.desc.product

    def usb_make_path(self) -> str:
        return f"usb-{self.bus.hcd_name}-{self.port}"

    def interface(self, number: int) -> UsbInterface | None:
        for intf in self.interfaces:
            if intf.desc.number == number:
                return intf
        return None


class UsbInterface(Device):
    """``struct usb_interface``; ``intfdata`` is ``usb_get_intfdata()``."""

    __slots__ = ("desc", "intfdata", "udev")

    def __init__(self, udev: UsbDevice, desc: InterfaceDesc) -> None:
        d = udev.desc
        super().__init__(
            f"{udev.name}:1.{desc.number}",
            udev,
            "usb",
            devtype="usb_interface",
            attrs={
                "bInterfaceNumber": f"{desc.number:02x}",
                "bAlternateSetting": " 0",
                "bInterfaceClass": f"{desc.cls:02x}",
                "bInterfaceSubClass": f"{desc.subclass:02x}",
                "bInterfaceProtocol": f"{desc.protocol:02x}",
                "modalias": (
                    f"usb:v{d.vendor:04X}p{d.product_id:04X}d{d.bcd_device:04X}dc00dsc00dp00"
                    f"ic{desc.cls:02X}isc{desc.subclass:02X}ip{desc.protocol:02X}in{desc.number:02X}"
                ),
            },
            uevent_env={
                "PRODUCT": f"{d.vendor:x}/{d.product_id:x}/{d.bcd_device:x}",
                "TYPE": "0/0/0",
                "INTERFACE": f"{desc.cls}/{desc.subclass}/{desc.protocol}",
            },
        )
        self.udev = udev
        self.desc = desc
        self.intfdata: object = None


class UsbBus:
    """One host controller: its PCI function, its root hub ``usbN``, ports and device numbers."""

    MAX_PORTS = 15

    def __init__(self, busnum: int, pci: Device) -> None:
        self.busnum = busnum
        self.hcd_name = pci.name
        self.root_hub = Device(f"usb{busnum}", pci, "usb", devtype="usb_device", attrs={"busnum": str(busnum)})
        self.ports: dict[int, UsbDevice] = {}
        self._devnums: set[int] = {1}

    def free_port(self) -> int | None:
        for port in range(1, self.MAX_PORTS + 1):
            if port not in self.ports:
                return port
        return None

    def alloc_devnum(self) -> int:
        n = 2
        while n in self._devnums:
            n += 1
        self._devnums.add(n)
        return n

    def free_devnum(self, n: int) -> None:
        self._devnums.discard(n)
