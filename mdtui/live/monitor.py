"""udev events through pyudev, on whatever loop watches ``fileno()``.

With udevd running, the monitor listens to udev's broadcast (devices with udev's
properties).  Without it (containers, these machines) nothing would ever arrive on that
socket, so it listens to the kernel's own uevents instead and says so.  ``receive`` drains
what is queued without blocking; ENOBUFS (the kernel dropped events in a storm) is left to
the caller, which re-reads everything.
"""

from __future__ import annotations

from pathlib import Path

SUBSYSTEMS = ("media", "usb", "video4linux", "dvb", "sound", "module")


def udevd_running() -> bool:
    return Path("/run/udev/control").exists()


class UdevMonitor:
    def __init__(self) -> None:
        import pyudev  # imported only for the live source

        self._context = pyudev.Context()
        self.source = "udev" if udevd_running() else "kernel"
        self._monitor = pyudev.Monitor.from_netlink(self._context, source=self.source)
        for subsystem in SUBSYSTEMS:
            self._monitor.filter_by(subsystem)
        self._monitor.start()
        self.description = (
            "events: udev"
            if self.source == "udev"
            else "events: kernel uevents (udevd is not running: no udev properties, /dev may lag)"
        )

    def fileno(self) -> int:
        return self._monitor.fileno()

    def receive(self) -> list[dict[str, str]]:
        out = []
        while (device := self._monitor.poll(timeout=0)) is not None:
            env = {k: str(v) for k, v in device.properties.items()}
            env.setdefault("ACTION", device.action or "")
            env.setdefault("DEVPATH", device.device_path)
            out.append(env)
        return out

    def close(self) -> None:
        # pyudev's Monitor has no close(); dropping it closes the netlink socket
        self._monitor = None  # type: ignore[assignment]
