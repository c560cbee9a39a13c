"""Devices that can be hot-plugged into the simulated machine, by catalog name.

``hvr950q``: Hauppauge WinTV-HVR-950Q (2040:7200, bcdDevice 0005, four interfaces: 0 vendor
specific for au0828, 1 audio control and 2 audio streaming for snd-usb-audio, 3 vendor
specific), as the LinuxTV wiki's ``lsusb -v`` shows it.  The product and serial strings are
representative: the wiki's dump does not print them.
``hvr850``: the HVR-850 (2040:7240), same au0828 board layout.
``c270``: Logitech Webcam C270 (046d:0825): uvcvideo on its video interfaces, snd-usb-audio
on its microphone, and no media device sharing (the contrast case).
"""

from __future__ import annotations

from .usb import InterfaceDesc, UsbDeviceDesc

_AU0828_INTERFACES = (
    InterfaceDesc(0, 0xFF, 0xFF, 0xFF),
    InterfaceDesc(1, 0x01, 0x01),
    InterfaceDesc(2, 0x01, 0x02),
    InterfaceDesc(3, 0xFF, 0xFF, 0xFF),
)

CATALOG: dict[str, UsbDeviceDesc] = {
    "hvr950q": UsbDeviceDesc(
        vendor=0x2040,
        product_id=0x7200,
        bcd_device=0x0005,
        product="WinTV HVR-950Q",
        manufacturer="Hauppauge",
        serial="4034209007",
        interfaces=_AU0828_INTERFACES,
    ),
    "hvr850": UsbDeviceDesc(
        vendor=0x2040,
        product_id=0x7240,
        bcd_device=0x0005,
        product="WinTV HVR-850",
        manufacturer="Hauppauge",
        serial="4034209011",
        interfaces=_AU0828_INTERFACES,
    ),
    "c270": UsbDeviceDesc(
        vendor=0x046D,
        product_id=0x0825,
        bcd_device=0x0010,
        product="",  # no product or manufacturer string: uvcvideo says "UVC Camera (046d:0825)"
        manufacturer="",
        serial="200901010001",
        interfaces=(
            InterfaceDesc(0, 0x0E, 0x01),
            InterfaceDesc(1, 0x0E, 0x02),
            InterfaceDesc(2, 0x01, 0x01),
            InterfaceDesc(3, 0x01, 0x02),
        ),
    ),
}
