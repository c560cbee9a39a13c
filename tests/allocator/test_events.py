"""The event stream: one order, sequence numbers, the allocator's own log lines."""

from __future__ import annotations

from allocator import Event

from ..conftest import make_kernel


def test_subscriber_sees_every_event_in_order_with_allocator_trace() -> None:
    k = make_kernel("au0828", "snd_usb_audio")
    seen: list[Event] = []
    stop = k.subscribe(seen.append)
    k.plug("hvr950q")
    k.unbind("au0828", "1-1:1.0")
    k.unbind("snd-usb-audio", "1-1:1.1")
    stop()
    k.plug("hvr950q")
    assert [e.seq for e in seen] == list(range(seen[0].seq, seen[0].seq + len(seen)))
    assert seen[-1].seq < k.events.last_seq  # nothing after unsubscribe
    trace = [e.line() for e in seen if e.kind == "trace" and "media_device" in e.text]
    assert trace == [
        "usb 1-1: __media_device_get: Allocated media device for owner au0828",
        "usb 1-1: __media_device_get: module snd_usb_audio got owner reference",
        "usb 1-1: media_device_delete: module snd_usb_audio put owner module reference",
        "usb 1-1: media_device_instance_release: releasing Media Device",
    ]
    assert k.events.subscriber_errors == []


def test_a_broken_subscriber_does_not_break_the_kernel() -> None:
    k = make_kernel("au0828")

    def broken(event: Event) -> None:
        raise RuntimeError("boom")

    k.subscribe(broken)
    k.plug("hvr950q")
    assert k.allocator.instances() and len(k.events.subscriber_errors) > 0
