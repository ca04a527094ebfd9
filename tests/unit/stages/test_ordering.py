from hub.events import Quality
from hub.ordering.dedupe import DedupeWindow, dedupe_event
from hub.ordering.reorder import ReorderBuffer, reorder_drain, reorder_flush, reorder_push
from hub.testing.factories import numeric_event


def test_dedupe_recognises_redelivery_and_forgets_beyond_capacity():
    window = DedupeWindow(capacity=2)
    assert dedupe_event(window, "a") is True
    assert dedupe_event(window, "a") is False
    assert dedupe_event(window, "b") is True
    assert dedupe_event(window, "c") is True  # evicts "a"
    assert dedupe_event(window, "a") is True
    assert len(window.seen) == 2


def test_dedupe_state_round_trips():
    window = DedupeWindow(capacity=3)
    for i in "xyz":
        dedupe_event(window, i)
    again = DedupeWindow.from_dict(window.to_dict())
    assert dedupe_event(again, "y") is False and dedupe_event(again, "w") is True


def seqs(events):
    return [e.seq for e in events]


def test_reorder_holds_until_window_then_releases_in_order():
    buf = ReorderBuffer(window_s=2.0, max_events=100)
    assert seqs(reorder_push(buf, numeric_event(seq=10), now=0.0).events) == []  # the first waits too
    assert seqs(reorder_push(buf, numeric_event(seq=30), now=0.1).events) == []
    released = reorder_push(buf, numeric_event(seq=20), now=0.2)
    assert released.events == [] and released.reordered == 1
    assert seqs(reorder_flush(buf, now=1.0).events) == []
    assert seqs(reorder_flush(buf, now=2.05).events) == [10]
    assert seqs(reorder_flush(buf, now=2.15).events) == [20, 30]  # 30 waited 2 s; 20 goes before it


def test_reorder_passes_contiguous_sequence_without_waiting():
    buf = ReorderBuffer(window_s=5.0, max_events=100, last_released=-1)
    for i in range(5):
        assert seqs(reorder_push(buf, numeric_event(seq=i), now=0.0).events) == [i]


def test_reorder_flags_late_event_and_never_drops_it():
    buf = ReorderBuffer(window_s=1.0, max_events=100)
    reorder_push(buf, numeric_event(seq=5), now=0.0)
    reorder_flush(buf, now=1.0)
    released = reorder_push(buf, numeric_event(seq=3), now=10.0)
    assert seqs(released.events) == [3] and released.late == 1
    assert Quality.LATE in released.events[0].quality


def test_reorder_bounded_memory_releases_oldest():
    buf = ReorderBuffer(window_s=100.0, max_events=3, last_released=0)
    out = []
    for s in (10, 30, 20, 40):
        out += reorder_push(buf, numeric_event(seq=s), now=0.0).events
    assert seqs(out) == [10] and len(buf.held) == 3
    assert seqs(reorder_drain(buf)) == [20, 30, 40]


def test_reorder_state_round_trips_with_held_events():
    buf = ReorderBuffer(window_s=2.0, max_events=10, last_released=0)
    reorder_push(buf, numeric_event(seq=1), now=0.0)
    reorder_push(buf, numeric_event(seq=5), now=0.5)
    again = ReorderBuffer.from_dict(buf.to_dict())
    assert again.last_released == 1 and seqs(reorder_flush(again, now=3.0).events) == [5]
