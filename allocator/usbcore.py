"""The USB bus and the driver core: hotplug, probe, disconnect, and sysfs bind/unbind.

Models drivers/usb/core (hub hotplug, ``usb_set_configuration`` adding interfaces one by one,
``usb_driver_claim_interface``, ``usb_disable_device``) and drivers/base/{bus,dd}.c as a user
sees them through ``/sys/bus/usb/drivers/<driver>/bind|unbind``:

* ``device_add`` sends ``add`` and then probes the drivers in registration order; a probe that
  returns ENODEV/ENXIO "rejects the match" (debug line), any other error is logged and the next
  driver gets its turn; success sends ``bind``.
* ``bind``: ENODEV for an unknown interface name or an id-table mismatch, EBUSY when the
  interface already has a driver, otherwise the probe's own errno.
* ``unbind``: ENODEV unless the interface is bound to exactly that driver.
* Interfaces of one USB device are probed and removed under that device's lock (USB sets
  ``need_parent_lock``), so two drivers of one stick never run probe/disconnect at once;
  different sticks run concurrently.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from .catalog import CATALOG
from .device import Device, DeviceCore, dev_str
from .errors import KernelError, sysfs_write_error
from .events import Printk
from .module import Module
from .usb import UsbBus, UsbDevice, UsbInterface

if TYPE_CHECKING:
    from .drivers import Holder
    from .kernel import Kernel
    from .mc.device import MediaDevice


class UsbDriver:
    """``struct usb_driver``: subclasses give ``name``, ``match``, ``probe``, ``disconnect``."""

    name = ""

    #: False once ``usb_deregister()`` has started: no new probes.
    accepting = True

    def __init__(self, kernel: Kernel, module: Module | None) -> None:
        self.k = kernel
        self.module = module  # THIS_MODULE; None when built in
        self.log: Printk = kernel.printk

    def match(self, intf: UsbInterface) -> bool:
        raise NotImplementedError

    def probe(self, intf: UsbInterface) -> None:
        raise NotImplementedError

    def disconnect(self, intf: UsbInterface) -> None:
        raise NotImplementedError

    def holders(self) -> list[tuple[MediaDevice, Holder]]:
        """The media devices this driver holds a reference on, and why."""
        return []

    @property
    def module_name(self) -> str | None:
        return self.module.name if self.module is not None else None


class UsbCore:
    """Host controllers, the plugged devices and the registered USB drivers."""

    BUSES = 8

    def __init__(self, core: DeviceCore, printk: Printk) -> None:
        self._core = core
        self._log = printk
        self._lock = threading.Lock()
        self.drivers: dict[str, UsbDriver] = {}
        pci_root = Device("pci0000:00", None, "")
        self.buses: list[UsbBus] = []
        for n in range(1, self.BUSES + 1):
            pci = Device(f"0000:00:{0x13 + n:02x}.0", pci_root, "pci")
            self.buses.append(UsbBus(n, pci))
        for dev in [pci_root, *(b.root_hub.parent for b in self.buses), *(b.root_hub for b in self.buses)]:
            if dev is not None:  # present since boot: no uevent, like coldplugged devices
                dev.registered = True
                core.devices[dev.devpath] = dev

    # -- lookup -----------------------------------------------------------------------------

    def devices(self) -> Iterator[UsbDevice]:
        with self._lock:
            found = [d for b in self.buses for d in b.ports.values()]
        yield from sorted(found, key=lambda d: (d.bus.busnum, d.port))

    def find_device(self, name: str) -> UsbDevice | None:
        return next((d for d in self.devices() if d.name == name), None)

    def find_interface(self, name: str) -> UsbInterface | None:
        udev = self.find_device(name.split(":", 1)[0])
        if udev is None:
            return None
        return next((i for i in udev.interfaces if i.name == name and i.registered), None)

    # -- hotplug ----------------------------------------------------------------------------

    def plug(self, catalog_name: str, port: str | None = None) -> UsbDevice:
        desc = CATALOG.get(catalog_name)
        if desc is None:
            known = ", ".join(sorted(CATALOG))
            raise KernelError(errno.ENOENT, f"plug: no catalog device '{catalog_name}' (known: {known})")
        with self._lock:
            bus, portnum = self._choose_port(port)
            udev = UsbDevice(bus, portnum, bus.alloc_devnum(), desc, catalog_name)
            bus.ports[portnum] = udev
        with udev.lock:
            self._log.dev_info(dev_str(udev), f"new high-speed USB device number {udev.devnum} using xhci_hcd")
            self._core.device_add(udev)
            udev.driver = "usb"
            self._core.uevent(udev, "bind")
            for intf in udev.interfaces:
                self._core.device_add(intf)
                if intf.driver:  # claimed by another interface's probe before it was added
                    self._core.uevent(intf, "bind")
                else:
                    self._autoprobe(intf)
        return udev

    def _choose_port(self, port: str | None) -> tuple[UsbBus, int]:
        if port is None:
            for bus in self.buses:
                free = bus.free_port()
                if free is not None:
                    return bus, free
            raise KernelError(errno.ENOSPC, "plug: every USB port is in use")
        try:
            busnum, portnum = (int(x) for x in port.split("-", 1))
        except ValueError:
            raise KernelError(errno.EINVAL, f"plug: bad port '{port}' (expected BUS-PORT, e.g. 1-3)") from None
        if not 1 <= busnum <= len(self.buses) or not 1 <= portnum <= UsbBus.MAX_PORTS:
            raise KernelError(errno.ENODEV, f"plug: no such port {port}")
        bus = self.buses[busnum - 1]
        if portnum in bus.ports:
            raise KernelError(errno.EBUSY, f"plug: port {port} already has {bus.ports[portnum].name}")
        return bus, portnum

    def unplug(self, name: str) -> None:
        udev = self.find_device(name)
        if udev is None:
            raise KernelError(errno.ENODEV, f"unplug: no USB device {name}", name)
        with udev.lock:
            if not udev.registered:
                raise KernelError(errno.ENODEV, f"unplug: no USB device {name}", name)
            self._log.dev_info(dev_str(udev), f"USB disconnect, device number {udev.devnum}")
            for intf in udev.interfaces:
                if intf.driver:
                    self._release(intf)
                self._core.device_del(intf)
            udev.driver = None
            self._core.uevent(udev, "unbind")
            self._core.device_del(udev)
        with self._lock:
            del udev.bus.ports[udev.port]
            udev.bus.free_devnum(udev.devnum)

    # -- drivers ----------------------------------------------------------------------------

    def register_driver(self, drv: UsbDriver) -> None:
        """``usb_register()``: add the driver, then offer it every unbound interface."""
        with self._lock:
            self.drivers[drv.name] = drv
        self._log.pr_info(f"usbcore: registered new interface driver {drv.name}")
        for udev in list(self.devices()):
            with udev.lock:
                for intf in udev.interfaces:
                    if intf.registered and not intf.driver and drv.match(intf):
                        self._try_probe(drv, intf)

    def deregister_driver(self, drv: UsbDriver) -> None:
        """``usb_deregister()``: no new binds, then unbind every interface it holds."""
        drv.accepting = False
        for udev in list(self.devices()):
            with udev.lock:
                for intf in udev.interfaces:
                    if intf.driver == drv.name:
                        self._release(intf)
        with self._lock:
            self.drivers.pop(drv.name, None)
        self._log.pr_info(f"usbcore: deregistering interface driver {drv.name}")

    def claim_interface(self, drv: UsbDriver, intf: UsbInterface, data: object) -> None:
        """``usb_driver_claim_interface()``: bind another interface without probing it."""
        if intf.driver:
            raise KernelError(errno.EBUSY, f"{intf.name} already claimed by {intf.driver}")
        intf.driver = drv.name
        intf.intfdata = data
        if intf.registered:
            self._core.uevent(intf, "bind")

    def bind(self, driver_name: str, intf_name: str) -> None:
        """``echo INTF > /sys/bus/usb/drivers/DRIVER/bind``."""
        path = f"/sys/bus/usb/drivers/{driver_name}/bind"
        drv = self.drivers.get(driver_name)
        if drv is None:
            raise KernelError(errno.ENOENT, f"{path}: No such file or directory", intf_name)
        intf = self.find_interface(intf_name)
        if intf is None:
            raise sysfs_write_error(errno.ENODEV, path, intf_name)
        with intf.udev.lock:
            if not intf.registered or not drv.accepting or not drv.match(intf):
                raise sysfs_write_error(errno.ENODEV, path, intf_name)
            if intf.driver:
                raise sysfs_write_error(errno.EBUSY, path, intf_name)
            try:
                self._probe(drv, intf)
            except KernelError as exc:
                raise sysfs_write_error(exc.errno or errno.EIO, path, intf_name) from exc

    def unbind(self, driver_name: str, intf_name: str) -> None:
        """``echo INTF > /sys/bus/usb/drivers/DRIVER/unbind``."""
        path = f"/sys/bus/usb/drivers/{driver_name}/unbind"
        if driver_name not in self.drivers:
            raise KernelError(errno.ENOENT, f"{path}: No such file or directory", intf_name)
        intf = self.find_interface(intf_name)
        if intf is None:
            raise sysfs_write_error(errno.ENODEV, path, intf_name)
        with intf.udev.lock:
            if not intf.registered or intf.driver != driver_name:
                raise sysfs_write_error(errno.ENODEV, path, intf_name)
            self._release(intf)

    # -- probe / remove ---------------------------------------------------------------------

    def _autoprobe(self, intf: UsbInterface) -> None:
        with self._lock:
            candidates = list(self.drivers.values())
        for drv in candidates:
            if drv.accepting and drv.match(intf) and self._try_probe(drv, intf):
                return

    def _try_probe(self, drv: UsbDriver, intf: UsbInterface) -> bool:
        """Probe as ``__driver_attach``/``__device_attach`` do: errors are logged, not raised."""
        try:
            self._probe(drv, intf)
        except KernelError:
            return False
        return True

    def _probe(self, drv: UsbDriver, intf: UsbInterface) -> None:
        intf.driver = drv.name
        try:
            drv.probe(intf)
        except KernelError as exc:
            intf.driver = None
            intf.intfdata = None
            code = exc.errno or errno.EIO
            if code in (errno.ENODEV, errno.ENXIO):
                self._log.dev_dbg(dev_str(intf), f"probe with driver {drv.name} rejects match {-code}")
            else:
                self._log.dev_err(dev_str(intf), f"probe with driver {drv.name} failed with error {-code}")
            raise
        self._core.uevent(intf, "bind")

    def _release(self, intf: UsbInterface) -> None:
        """``device_release_driver()``: the driver's disconnect, then ``unbind``."""
        drv = self.drivers.get(intf.driver or "")
        if drv is not None:
            drv.disconnect(intf)
        intf.intfdata = None
        self._core.uevent(intf, "unbind")
        intf.driver = None
