"""Speed of the simulated allocator (issue: allocator).  Prints its figures; asserts nothing.

1. allocate+delete pairs per second against a media device another driver already holds
   (au0828 bound, so no release per pair), events on (a subscriber counts them), 1 and 4
   threads; the best of three timed windows.  Target: >= 200,000 pairs/s on one thread.
2. HVR-950Q plug+unplug cycles per second (about 525 entities each), best of three runs of
   100 cycles.  Target: >= 100/s.
3. Cost of one allocate+delete pair with 1 .. 1,000 shared devices in the list, with our
   indexed lookup and with the kernel's list walk (lookup="scan").

Usage: python bench/allocator_bench.py [--quick]
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable

from allocator import Kernel
from allocator.catalog import CATALOG
from allocator.usb import UsbDevice

QUICK = "--quick" in sys.argv


def best_of(runs: int, fn: Callable[[], float]) -> float:
    return max(fn() for _ in range(runs))


def pairs_per_second(threads: int, seconds: float) -> tuple[float, int]:
    k = Kernel()
    k.modprobe("au0828")
    k.modprobe("snd_usb_audio")
    counted = [0]

    def count(_event: object) -> None:
        counted[0] += 1

    k.subscribe(count)
    name = k.plug("hvr950q")
    udev = next(u for u in k.view.usb_devices() if u.name == name)
    k.unbind("snd-usb-audio", "1-1:1.1")  # au0828 alone holds it; our pairs share it
    owner = k.module("snd_usb_audio")
    alloc, delete = k.allocator.media_device_usb_allocate, k.allocator.media_device_delete
    done = [0] * threads
    stop = threading.Event()

    def worker(i: int) -> None:
        n = 0
        while not stop.is_set():
            for _ in range(500):
                mdev = alloc(udev, "snd_usb_audio", owner)
                delete(mdev, "snd_usb_audio", owner)
            n += 500
        done[i] = n

    before = counted[0]
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    t0 = time.perf_counter()
    for t in pool:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - t0
    assert k.check() == [], k.check()
    return sum(done) / elapsed, counted[0] - before


def plug_cycles_per_second(cycles: int) -> tuple[float, int]:
    k = Kernel()
    k.modprobe("au0828")
    k.modprobe("snd_usb_audio")
    entities = 0
    t0 = time.perf_counter()
    for _ in range(cycles):
        name = k.plug("hvr950q")
        entities = len(k.view.media_devices()[0].mdev.entities)
        k.unplug(name)
    rate = cycles / (time.perf_counter() - t0)
    assert k.check() == [] and k.view.media_devices() == []
    return rate, entities


def pair_cost_us(lookup: str, devices: int, pairs: int) -> float:
    k = Kernel(lookup=lookup)
    bus = k.usb.buses[0]
    desc = CATALOG["hvr950q"]
    udevs = [UsbDevice(bus, 100 + i, 2 + i % 120, desc, "hvr950q") for i in range(devices)]
    for udev in udevs:  # one holder each, so every instance stays in the list
        k.allocator.media_device_usb_allocate(udev, "au0828", None)
    target = udevs[-1]  # the last one: the whole list is walked when scanning
    alloc, delete = k.allocator.media_device_usb_allocate, k.allocator.media_device_delete

    def run() -> float:
        t0 = time.perf_counter()
        for _ in range(pairs):
            delete(alloc(target, "snd_usb_audio", None), "snd_usb_audio", None)
        return pairs / (time.perf_counter() - t0)

    return 1e6 / best_of(3, run)


def main() -> None:
    secs = 0.5 if QUICK else 2.0
    print(f"python {sys.version.split()[0]}, {'quick' if QUICK else 'full'} run")
    for threads in (1, 4):
        rate, events = max(pairs_per_second(threads, secs) for _ in range(3))  # best of 3 windows
        label = f"allocate+delete pairs/s, {threads} thread(s), shared device, events on"
        print(f"{label}: {rate:,.0f} ({events:,} events)")
    rate, entities = max(plug_cycles_per_second(20 if QUICK else 100) for _ in range(3))  # best of 3 runs
    print(f"HVR-950Q plug+unplug cycles/s ({entities} entities with the mixer): {rate:,.1f}")
    pairs = 2_000 if QUICK else 20_000
    print("allocate+delete pair cost by number of shared devices (us/pair):")
    print("  devices   indexed (ours)   list walk (kernel)")
    for devices in (1, 10, 100, 1000):
        ours, kernel = pair_cost_us("index", devices, pairs), pair_cost_us("scan", devices, pairs)
        print(f"  {devices:>7}   {ours:>14.2f}   {kernel:>18.2f}")


if __name__ == "__main__":
    main()
