"""Pure parts of the forwarder: replay marking and backoff."""

from __future__ import annotations

import random

import pytest

from edge_buffer.forwarder import mark_replayed, next_backoff, prepare_batch
from edge_buffer.queue import QueuedEvent, encode_event
from hub.events import DataClass, Event, Quality
from hub.rules.edge import EdgeRules


def _row(event: Event, row_id: int) -> QueuedEvent:
    lane, cls, stream, seq, event_id, received, _size, payload = encode_event(event)
    return QueuedEvent(row_id, lane, cls, stream, seq, event_id, received, payload)


def test_mark_replayed_keeps_times_and_seq(event_factory):
    original = event_factory(DataClass.VITAL, 7).flagged(Quality.QUESTIONABLE)
    marked = Event.from_json(mark_replayed(original.to_json()))
    assert marked.provenance.replayed is True
    assert marked.quality == {Quality.QUESTIONABLE, Quality.REPLAYED}
    assert (marked.event_id, marked.seq, marked.device_time, marked.received_time) == (
        original.event_id, original.seq, original.device_time, original.received_time)
    assert marked.with_changes(provenance=original.provenance, quality=original.quality) == original


def test_prepare_batch_marks_backlog_and_old_rows_only(event_factory):
    now = 1.7e9 + 1000
    fresh = event_factory(DataClass.VITAL, 0, now=now - 1)
    old = event_factory(DataClass.VITAL, 1, now=now - 120)
    backlog = event_factory(DataClass.ALARM, 2, now=now - 1)
    rows = [_row(backlog, 3), _row(fresh, 10), _row(old, 11)]
    messages, replayed = prepare_batch(rows, backlog_mark=5, now=now - 2, replay_age_s=30)
    assert replayed == {3, 11}
    assert [m.key for m in messages] == [backlog.stream, fresh.stream, old.stream]
    assert Event.from_json(messages[1].value) == fresh  # not a replay: sent byte for byte
    assert messages[1].value == fresh.to_json()
    assert Event.from_json(messages[0].value).provenance.replayed


def test_backoff_grows_to_the_cap_with_jitter():
    settings = EdgeRules(backoff_initial_s=0.5, backoff_max_s=8, backoff_multiplier=2)
    rng = random.Random(3)
    delay, seen = settings.backoff_initial_s, []
    for _ in range(12):
        delay = next_backoff(delay, settings, rng)
        seen.append(delay)
    assert seen[0] == pytest.approx(1.0, rel=0.21)
    assert max(seen) <= 8 * 1.2 and seen[-1] >= 8 * 0.8


def test_backoff_limits_are_validated():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="backoff_max_s"):
        EdgeRules(backoff_initial_s=10, backoff_max_s=1)


@pytest.mark.parametrize("flags", [set(), {Quality.QUESTIONABLE}, {Quality.REPLAYED}, {Quality.MANUAL, Quality.LATE}])
@pytest.mark.parametrize("data_class", [DataClass.VITAL, DataClass.ALARM, DataClass.WAVEFORM, DataClass.STATUS])
def test_fast_replay_marking_equals_the_parsed_one(event_factory, flags, data_class):
    from edge_buffer.forwarder import _mark_replayed_parsed

    event = event_factory(data_class, 3).flagged(*flags).with_changes(text='tricky "quality":[ text')
    fast, parsed = Event.from_json(mark_replayed(event.to_json())), Event.from_json(_mark_replayed_parsed(event.to_json()))
    assert fast == parsed
    assert fast.provenance.replayed and fast.quality == event.quality | {Quality.REPLAYED}


def test_replay_marking_of_foreign_json_falls_back_to_parsing(event_factory):
    import orjson

    event = event_factory(DataClass.VITAL, 1)
    reordered = orjson.dumps(dict(reversed(list(orjson.loads(event.to_json()).items()))))
    marked = Event.from_json(mark_replayed(reordered))
    assert marked.provenance.replayed and Quality.REPLAYED in marked.quality


def test_forwarder_replays_the_recovered_backlog_and_nothing_live(tmp_path, event_factory):
    """A fake upstream (in-memory, acks everything): rows in the file at start go out as replays,
    rows appended after the connection came up do not; after a failed batch the backlog is replayed."""
    import asyncio
    import time as _time

    from edge_buffer.errors import UpstreamError
    from edge_buffer.forwarder import Forwarder
    from edge_buffer.metrics import EdgeMetrics
    from edge_buffer.queue import EdgeQueue
    from edge_buffer.upstream import SendResult

    class FakeUpstream:
        kind, target = "fake", "fake://"

        def __init__(self):
            self.sent: list[Event] = []
            self.fail_next = False

        async def connect(self):
            pass

        async def send(self, batch):
            if self.fail_next:
                self.fail_next = False
                raise UpstreamError("link down")
            self.sent += [Event.from_json(m.value) for m in batch]
            return SendResult(acked=[m.row_id for m in batch])

        async def close(self):
            pass

    settings = EdgeRules(replay_age_s=3600, backoff_initial_s=0.01, backoff_max_s=0.02)
    now = _time.time()
    queue = EdgeQueue(tmp_path / "b.db", settings)
    queue.append_many([event_factory(DataClass.VITAL, i, now=now) for i in range(3)])  # "recovered"
    upstream = FakeUpstream()

    async def scenario():
        async def store(fn, *args):
            return fn(*args)

        fwd = Forwarder(queue, store, upstream, settings, EdgeMetrics(), backlog_mark=queue.max_row_id())
        task = asyncio.create_task(fwd.run())
        for _ in range(100):
            await asyncio.sleep(0.01)
            if len(upstream.sent) == 3:
                break
        queue.append_many([event_factory(DataClass.VITAL, 3, now=now)])
        fwd.poke()
        for _ in range(100):
            await asyncio.sleep(0.01)
            if len(upstream.sent) == 4:
                break
        upstream.fail_next = True
        queue.append_many([event_factory(DataClass.VITAL, 4, now=now)])
        fwd.poke()
        for _ in range(200):
            await asyncio.sleep(0.01)
            if len(upstream.sent) == 5:
                break
        await fwd.stop()
        await task

    asyncio.run(scenario())
    assert [e.seq for e in upstream.sent] == [0, 1, 2, 3, 4]
    assert [e.provenance.replayed for e in upstream.sent] == [True, True, True, False, True]
    queue.close()
