"""The Kafka stage runners without a broker: batches in, records and state out.

The JSON memo must not change a byte of the state a checkpoint writes (it only avoids
serialising the same held event again), and the batch acks must give faust's commit
calculation the same contiguous offsets its per-message acks did."""

import time
from collections import defaultdict
from types import SimpleNamespace

from faust.transport.consumer import Consumer as FaustConsumer
from faust.types import TP
from intervaltree import IntervalTree

from hub.bench.kafka_load import bindings, live_event, live_records, numeric
from hub.events import Event, EventKind
from hub.rules.load import load_rules
from hub.runtime.kafka_batches import ack_range
from hub.runtime.kafka_producer import KafkaPublisher, producer_config
from hub.runtime.kafka_stages import (HandOver, InRecord, StageOneRunner, StageTwoRunner, split_normalized,
                                      unpack_state)
from hub.runtime.kafka_topics import TopicNames

RULES = load_rules("rules")
NAMES = TopicNames.from_rules(RULES.kafka)


def raw_records(start: float, devices: int = 6, seconds: int = 12) -> list[InRecord]:
    """Two monitors per patient, two metrics each, 1 Hz, the second half of each stream shuffled."""
    events = bindings(devices, start - 3600)
    for t in range(seconds):
        for d in range(devices):
            for code in (0, 1):
                events.append(numeric(d, code, t, start + t, start + t))
    events[len(events) // 2:] = sorted(events[len(events) // 2:], key=lambda e: (e.seq * 7919) % 13)
    return [InRecord(e.stream.encode(), e.to_json(), NAMES.raw, 0, i) for i, e in enumerate(events)]


def run_with_checkpoints(memo: bool, handed_over: HandOver | None = None):
    """Stage 1 then stage 2 over the records in batches, a checkpoint every second batch: the
    state each checkpoint writes (unpacked), in key order, and every record stage 2 wrote."""
    start = 1_700_000_000.0
    one, two = StageOneRunner(RULES, NAMES, handed_over), StageTwoRunner(RULES, NAMES, handed_over)
    if not memo:
        one.memo.encode = two.memo.encode = lambda event: event.to_json().decode()
    records, written, offset, stage2_out = raw_records(start), [], 0, []
    for i in range(0, len(records), 20):
        now = start + i / 20 * 0.5
        outs = one.process_batch(records[i:i + 20], now, lambda key: None) + one.tick(now)
        normalized = [o for o in outs if o.topic == NAMES.normalized]
        inputs = [InRecord(o.key, o.value, NAMES.normalized, 0, offset + n) for n, o in enumerate(normalized)]
        offset += len(inputs)
        stage2_out += two.process_batch(inputs, now, lambda key: None) + two.tick(now)
        if (i // 20) % 2:
            writes = one.take_state_writes() + two.take_state_writes()
            written.append(sorted((w.key, unpack_state(w.value)) for w in writes))
    return written, [(o.topic, o.key, o.value, o.headers) for o in stage2_out]


def test_memo_writes_the_same_state_as_serialising_every_time():
    (with_memo, _), (without, _) = run_with_checkpoints(memo=True), run_with_checkpoints(memo=False)
    assert with_memo == without
    held = sum(len(state["state"]["reorder"]["held"]) for checkpoint in with_memo for key, state in checkpoint
               if "state" in state)
    buckets = sum(len(state["resolver"]["buckets"]) for checkpoint in with_memo for key, state in checkpoint
                  if "resolver" in state)
    assert held > 0 and buckets > 0  # the memo had held events and open buckets to serve


def test_handed_over_events_give_the_same_outputs_and_state_as_decoding():
    handed_over = HandOver()
    taken = []
    take = handed_over.take
    handed_over.take = lambda line: taken.append(take(line)) or taken[-1]
    assert run_with_checkpoints(memo=True, handed_over=handed_over) == run_with_checkpoints(memo=True)
    hits = sum(event is not None for event in taken)
    assert hits == len(taken) > 0  # every line stage 2 read was stage 1's own, none decoded again
    assert handed_over.lines == {}  # each taken once, nothing left behind


def test_hand_over_takes_exact_lines_once_and_stays_bounded():
    handed_over = HandOver(limit=2)
    events = [numeric(0, 0, t, 1.0 + t, 1.0 + t) for t in range(3)]
    for event in events:
        handed_over.put(event.to_json(), event)
    assert handed_over.take(events[0].to_json()) is None  # the oldest went when the third came
    assert handed_over.take(events[1].to_json() + b" ") is None  # not byte-identical: decoded instead
    assert handed_over.take(events[1].to_json()) is events[1]
    assert handed_over.take(events[1].to_json()) is None  # a replayed copy is decoded
    record = InRecord(b"P", events[2].to_json() + b"\n" + events[0].to_json(), NAMES.normalized, 0, 0)
    split = list(split_normalized([record], handed_over))
    assert split[0][2] is events[2] and split[1][2] == events[0] and split[1][2] is not events[0]


def test_memo_serves_identity_only():
    runner = StageTwoRunner(RULES, NAMES)
    event = numeric(0, 0, 1, 1.0, 1.0)
    twin = numeric(0, 0, 1, 1.0, 1.0)  # equal, but another object
    runner.memo.remember(event, b'{"from":"the line"}')
    assert runner.memo.encode(event) == '{"from":"the line"}'
    assert runner.memo.encode(twin) == twin.to_json().decode()
    runner.memo.checkpoint_done()
    assert runner.memo.encode(event) == '{"from":"the line"}'  # still held: found again next time
    runner.memo.checkpoint_done()
    runner.memo.checkpoint_done()
    assert runner.memo.encode(event) == event.to_json().decode()  # not written last time: forgotten


def fake_consumer(committed: int | None):
    return SimpleNamespace(_committed_offset=defaultdict(lambda: committed), _acked_index=defaultdict(set),
                           _acked=defaultdict(list), _n_acked=0, _gap=defaultdict(IntervalTree))


def test_ack_range_feeds_fausts_commit_offset():
    tp = TP("devsync.events.raw", 0)
    consumer = fake_consumer(committed=100)
    assert ack_range(consumer, tp, 90, 149) == 50  # below the commit: already done
    assert ack_range(consumer, tp, 140, 149) == 0  # acked twice: counted once
    assert consumer._n_acked == 50
    assert FaustConsumer._new_offset(consumer, tp) == 150  # faust commits the next offset to read
    assert ack_range(consumer, tp, 160, 169) == 10  # a gap 150..159 (not yet processed)
    consumer._committed_offset[tp] = 150
    assert FaustConsumer._new_offset(consumer, tp) is None  # never past what was not processed
    assert ack_range(consumer, tp, 150, 159) == 10
    assert FaustConsumer._new_offset(consumer, tp) == 170


def test_ack_range_on_a_partition_never_committed():
    tp = TP("devsync.events.normalized", 3)
    consumer = fake_consumer(committed=None)
    assert ack_range(consumer, tp, 0, 9) == 10
    assert FaustConsumer._new_offset(consumer, tp) == 10


def test_stage_one_sends_alarms_down_the_alarm_lane():
    start = 1_700_000_000.0
    runner = StageOneRunner(RULES, NAMES)
    events = bindings(2, start - 60) + [e for i in (0, 1, 2) for e in live_event(i * 100, 2, start + i)]
    records = [InRecord(e.stream.encode(), e.to_json(), NAMES.raw, 0, i) for i, e in enumerate(events)]
    outs = runner.process_batch(records, start + 10, lambda key: None) + runner.tick(start + 20)
    lanes = {o.topic: [Event.from_json(line) for line in o.value.split(b"\n")] for o in outs
             if o.topic in (NAMES.normalized, NAMES.alarms_normalized)}
    assert {e.kind for e in lanes[NAMES.alarms_normalized]} == {EventKind.ALARM}
    assert len(lanes[NAMES.alarms_normalized]) == 3
    assert EventKind.ALARM not in {e.kind for e in lanes[NAMES.normalized]}


def test_publisher_routes_alarms_to_the_alarm_topic():
    publisher = KafkaPublisher(producer_config({"bootstrap.servers": "127.0.0.1:9"}), NAMES.raw, NAMES.alarms_raw)
    try:
        alarm, vital = live_event(0, 1, 1.0)[1], live_event(0, 1, 1.0)[0]
        assert publisher.topic_for(alarm) == NAMES.alarms_raw and publisher.topic_for(vital) == NAMES.raw
        assert KafkaPublisher.topic_for(SimpleNamespace(topic=NAMES.raw, alarm_topic=NAMES.raw), alarm) == NAMES.raw
    finally:
        publisher.close(timeout_s=0)


def test_bench_live_records_are_the_live_events_encoded():
    """The bench's template-built JSON decodes to the very events a connector would publish."""
    for i in (0, 1, 57, 100, 401, 9_999):
        records = live_records(i, 200, 1_700_000_123.25)
        events = live_event(i, 200, 1_700_000_123.25)
        assert [Event.from_json(value) for _, _, value in records] == events
        assert [(alarm, key) for alarm, key, _ in records] == [
            (e.kind is EventKind.ALARM, e.stream.encode()) for e in events]


def test_late_bindings_release_every_parked_event_in_one_pass():
    """Readings before their bindings are parked; the bindings a tick finds release them all, with
    one pass over the parking lot however many bindings came (not one per binding)."""
    start = 1_700_000_000.0
    runner = StageOneRunner(RULES, NAMES)
    readings = [numeric(d, 0, t, start + t, start + t) for t in range(3) for d in range(4)]
    records = [InRecord(e.stream.encode(), e.to_json(), NAMES.raw, 0, i) for i, e in enumerate(readings)]
    outs = runner.process_batch(records, start + 10, lambda key: None) + runner.tick(start + 20)
    assert not [o for o in outs if o.topic == NAMES.normalized]
    assert len(runner.stage.parking.parked) == len(readings)
    passes = []
    retry = runner.stage.parking.retry
    runner.stage.parking.retry = lambda state: passes.append(state) or retry(state)
    for binding in bindings(4, start - 60):
        runner.bindings.put(binding)
    outs = runner.tick(start + 21)
    released = [Event.from_json(line) for o in outs if o.topic == NAMES.normalized for line in o.value.split(b"\n")]
    assert sorted(e.event_id for e in released) == sorted(e.event_id for e in readings)
    assert len(passes) == 1 and not runner.stage.parking.parked
