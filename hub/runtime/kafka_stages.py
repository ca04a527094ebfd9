"""The stages as the Kafka workers run them: records in, records out, state per key.

No faust and no sockets here: a runner takes a batch of consumed records and `now`,
calls the pure stages (hub/pipeline.py), and returns the records to produce and the
table entries to write. kafka_app.py does the I/O in the one safe order:
  1. produce every output record and wait until the broker acknowledged all of them,
  2. write the state of every key the batch touched to its table (changelog),
  3. only then let faust ack the input (offsets are committed after a producer flush).
A crash between 1 and 3 replays the batch from the last committed offset against the
last written state; the stages are deterministic and outputs are keyed by event id, so
the replay re-produces identical records (at-least-once transport) and the dedupe by
event id in stage 2, the sinks and the readers makes the effect exact.

State objects are cached in memory per key and reloaded from the table after a
rebalance (the cache is dropped when partitions are revoked).
"""

from __future__ import annotations

import queue
import zlib
from dataclasses import dataclass

import orjson
from pydantic import ValidationError

from hub.events import Event, EventKind, event_text
from hub.ordering.dedupe import DedupeWindow, dedupe_event
from hub.pipeline import Stage1, Stage1Output, Stage2, StreamState
from hub.resolve.resolver import PatientResolver, Resolution
from hub.rules.models import RuleSet
from hub.runtime.kafka_metrics import STAGE_EVENTS
from hub.runtime.kafka_topics import TopicNames

MAX_RECORD_BYTES = 256 * 1024  # normalized records: well under the brokers' default 1 MB message limit


@dataclass(frozen=True)
class InRecord:
    key: bytes | None
    value: bytes
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class OutRecord:
    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] | None = None
    partition: int = -1  # -1: the producer's partitioner picks by key


@dataclass(frozen=True)
class StateWrite:
    key: bytes
    partition: int
    value: bytes


def dlq_record(names: TopicNames, stage: str, step: str, reason: str, value: bytes, key: bytes | None,
               origin: InRecord | None = None, event_id: str | None = None) -> OutRecord:
    """A dead letter, Kafka Connect style: the original bytes plus headers saying where and why."""
    headers = [("devsync.errors.stage", stage.encode()), ("devsync.errors.step", step.encode()),
               ("devsync.errors.reason", reason.encode())]
    if origin is not None:
        headers += [("devsync.errors.topic", origin.topic.encode()),
                    ("devsync.errors.partition", str(origin.partition).encode()),
                    ("devsync.errors.offset", str(origin.offset).encode())]
    if event_id:
        headers.append(("devsync.errors.event_id", event_id.encode()))
    return OutRecord(names.dlq, key, value, tuple(headers))


def decode_event(record: InRecord) -> tuple[Event | None, str | None]:
    try:
        return Event.from_json(record.value), None
    except (ValidationError, ValueError) as exc:
        first = exc.errors()[0] if isinstance(exc, ValidationError) else {"loc": (), "msg": str(exc)}
        where = ".".join(str(p) for p in first.get("loc", ())) or "record"
        return None, f"not a canonical event: {where}: {first.get('msg')}"


def chunk_lines(lines: list[bytes], limit: int):
    """Consecutive groups of lines whose joined size stays under limit (one line per group at least)."""
    chunk, size = [], 0
    for line in lines:
        if chunk and size + len(line) + 1 > limit:
            yield chunk
            chunk, size = [], 0
        chunk.append(line)
        size += len(line) + 1
    if chunk:
        yield chunk


def pack_state(data: dict) -> bytes:
    """Table values are zlib-compressed JSON (parked events and held events compress well)."""
    return zlib.compress(orjson.dumps(data), 1)


def unpack_state(raw: bytes) -> dict:
    return orjson.loads(zlib.decompress(raw))


def split_normalized(records: list[InRecord], handed_over: HandOver | None = None):
    """A normalized record holds one patient's events of one stage-1 batch, one JSON per line:
    (record, line, event or None, problem or None) per line. A line this worker's stage 1 wrote
    is taken from `handed_over` instead of being decoded again."""
    take = handed_over.take if handed_over is not None else _nothing_handed_over
    for record in records:
        for line in record.value.split(b"\n"):
            event = take(line)
            if event is not None:
                yield record, line, event, None
            else:
                yield (record, line, *decode_event(InRecord(record.key, line, record.topic, record.partition,
                                                            record.offset)))


def _nothing_handed_over(line: bytes) -> None:
    return None


class HandOver:
    """Events stage 1 wrote to a normalized topic, for stage 2 of the same worker, by their exact line.

    When one worker owns both a stream's partition and its patient's, stage 2 reads back the very
    lines its stage 1 wrote; decoding them again was a fifth of a worker's time. The Kafka record
    stays the source of truth: an event is taken only for a byte-identical line (a dict keyed by the
    line), and a line not here (another worker's, or after a restart) is decoded as before. Bounded:
    the oldest lines go first (`limit`), and each line is taken at most once."""

    def __init__(self, limit: int = 20_000):
        self.limit = limit
        self.lines: dict[bytes, Event] = {}

    def put(self, line: bytes, event: Event) -> None:
        lines = self.lines
        lines[line] = event
        if len(lines) > self.limit:
            del lines[next(iter(lines))]

    def take(self, line: bytes) -> Event | None:
        return self.lines.pop(line, None)


class JsonMemo:
    """The JSON text of events that stage state holds, kept from one checkpoint to the next.

    A checkpoint writes the whole state of every key touched since the last one: an event waiting
    in a reorder window or a resolution bucket was serialised again at every checkpoint it waited
    through (measured at 10,000 events/s: a tenth of a worker's time). Events are immutable, so
    the text is looked up by the object's identity (the memo holds the object, so the identity
    stays its own), from the line it was decoded from or from the previous checkpoint."""

    def __init__(self):
        self.known: dict[int, tuple[Event, bytes]] = {}  # decoded since, or written at, the last checkpoint
        self.written: dict[int, tuple[Event, bytes]] = {}  # written at this checkpoint

    def remember(self, event: Event, raw: bytes) -> None:
        self.known[id(event)] = (event, raw)

    def encode(self, event: Event) -> str:
        key = id(event)
        hit = self.known.get(key)
        if hit is None or hit[0] is not event:
            hit = (event, event.to_json())
        self.written[key] = hit
        return hit[1].decode()

    def checkpoint_done(self) -> None:
        """What this checkpoint wrote is what the next one may find again; the rest is dropped."""
        self.known, self.written = self.written, {}


class StageOneRunner:
    """Stage 1 keyed by device stream: dedupe, clocks, reorder, normalise, associate/park."""

    def __init__(self, rules: RuleSet, names: TopicNames, handed_over: HandOver | None = None):
        self.stage = Stage1(rules)
        self.handed_over = handed_over
        self.names = names
        self.streams: dict[bytes, tuple[StreamState, int]] = {}
        self.dirty: set[bytes] = set()
        self.bindings: queue.SimpleQueue[Event] = queue.SimpleQueue()  # fed by the binding reader thread
        self.counts: dict[str, int] = {}  # outcome -> events, flushed to the metric once per batch
        self.ready: dict[bytes, list[bytes]] = {}  # patient key -> event JSON lines of this batch
        self.ready_alarms: dict[bytes, list[bytes]] = {}  # the same for alarms (the alarm lane's topic)
        self.memo = JsonMemo()  # held events' JSON from one checkpoint to the next

    def process_batch(self, records: list[InRecord], now: float, load) -> list[OutRecord]:
        outs: list[OutRecord] = []
        self.apply_bindings(outs, now)
        STAGE_EVENTS.labels("stage1", "in").inc(len(records))
        out = Stage1Output()  # the whole batch's, collected once
        origins: dict[int, InRecord] = {}  # index in out.dlq -> the record that dead letter came from
        process = self.stage.process
        for record in records:
            event, problem = decode_event(record)
            if event is None or record.key != event.stream.encode():
                problem = problem or f"record key {record.key!r} is not the event's stream (producers key by stream)"
                outs.append(dlq_record(self.names, "stage1", "decode", problem, record.value, record.key, record,
                                       event.event_id if event else None))
                STAGE_EVENTS.labels("stage1", "dlq").inc()
                continue
            state = self.state_for(record.key, record.partition, event, load, outs)
            self.dirty.add(record.key)
            dead = len(out.dlq)
            process(state, event, now, out)
            for index in range(dead, len(out.dlq)):
                origins[index] = record
        self.collect(out, outs, origins)
        self.flush_counts(outs)
        return outs

    def tick(self, now: float) -> list[OutRecord]:
        outs: list[OutRecord] = []
        self.apply_bindings(outs, now)
        for key, (state, _) in self.streams.items():
            if state.holding:
                self.dirty.add(key)
                self.collect(self.stage.tick(state, now), outs)
        self.collect(self.stage.expire_parked(now), outs)
        self.flush_counts(outs)
        return outs

    def apply_bindings(self, outs: list[OutRecord], now: float) -> None:
        """Bindings read from the associations topic (this and every other worker's): all that
        arrived, then one pass over the parked events (not one pass per binding)."""
        out = Stage1Output()
        while True:
            try:
                event = self.bindings.get_nowait()
            except queue.Empty:
                break
            self.stage.apply_binding(event, out, release_parked=False)
        if out.associations or out.dlq:
            self.stage.release_parked(out)
            out.associations.clear()  # already on the topic
            self.collect(out, outs)

    def state_for(self, key: bytes, partition: int, event: Event, load, outs: list[OutRecord]) -> StreamState:
        cached = self.streams.get(key)
        if cached is not None:
            return cached[0]
        raw = load(key)
        if raw is None:
            state = self.stage.new_stream_state(event)
        else:
            data = unpack_state(raw)
            state = StreamState.from_dict(data["state"])
            for since, parked, reason in data.get("parked", []):
                parked_event = Event.from_json(parked)
                self.stage.parking.parked[parked_event.event_id] = (since, parked_event, reason)
        self.streams[key] = (state, partition)
        if raw is not None and data.get("parked"):
            # bindings read since the last checkpoint may already cover what was parked
            released = self.stage.parking.retry(self.stage.associations)
            if released:
                self.collect(Stage1Output(ready=released, unparked=len(released),
                                          unparked_ids=[e.event_id for e in released]), outs)
        return state

    def collect(self, out: Stage1Output, outs: list[OutRecord], origins: dict[int, InRecord] | None = None) -> None:
        """Turn a stage output into records; `origins` names the input record of each dead letter."""
        names = self.names
        ready, ready_alarms = self.ready, self.ready_alarms
        hand_over = self.handed_over.put if self.handed_over is not None else None
        for event in out.ready:
            lane = ready_alarms if event.kind is EventKind.ALARM else ready
            line = event.to_json()
            lane.setdefault(event.patient.patient_id.encode(), []).append(line)
            if hand_over is not None:
                hand_over(line, event)
        for event, reason in out.parked:
            outs.append(OutRecord(names.parked, event.event_id.encode(), event.to_json(),
                                  (("devsync.parked.reason", reason.encode()),)))
        for event, reason in out.expired:
            outs.append(dlq_record(names, "stage1", "associate", reason, event.to_json(), event.event_id.encode(),
                                   None, event.event_id))
        for index, (event, reason) in enumerate(out.dlq):
            origin = origins.get(index) if origins else None
            original = origin.value if origin is not None and origin.key == event.stream.encode() else event.to_json()
            outs.append(dlq_record(names, "stage1", "normalise", reason, original, event.event_id.encode(),
                                   origin, event.event_id))
        for event in out.associations:
            outs.append(OutRecord(names.associations, event.event_id.encode(), event.to_json()))
        for event in out.ready + [e for e, _ in out.expired] + [e for e, _ in out.parked]:
            self.dirty.add(event.stream.encode())
        counts = self.counts
        for outcome, n in (("ready", len(out.ready)), ("parked", len(out.parked)), ("expired", len(out.expired)),
                           ("dlq", len(out.dlq)), ("duplicate", out.duplicates), ("late", out.late),
                           ("unparked", out.unparked), ("association", len(out.associations))):
            if n:
                counts[outcome] = counts.get(outcome, 0) + n

    def flush_counts(self, outs: list[OutRecord]) -> None:
        """End of a batch or tick: one normalized record per patient, metrics once."""
        for topic, ready in ((self.names.alarms_normalized, self.ready_alarms), (self.names.normalized, self.ready)):
            for key, lines in ready.items():
                for chunk in chunk_lines(lines, MAX_RECORD_BYTES):
                    outs.append(OutRecord(topic, key, b"\n".join(chunk)))
            ready.clear()
        for outcome, n in self.counts.items():
            STAGE_EVENTS.labels("stage1", outcome).inc(n)
        self.counts.clear()

    def take_state_writes(self) -> list[StateWrite]:
        parked_by_stream: dict[bytes, list] = {}
        for since, event, reason in self.stage.parking.parked.values():
            parked_by_stream.setdefault(event.stream.encode(), []).append([since, event.to_json().decode(), reason])
        writes = []
        for key in self.dirty:
            cached = self.streams.get(key)
            if cached is None:
                continue
            state, partition = cached
            value = pack_state({"state": state.to_dict(self.memo.encode), "parked": parked_by_stream.get(key, [])})
            writes.append(StateWrite(key, partition, value))
        self.dirty.clear()
        self.memo.checkpoint_done()
        return writes

    def forget(self) -> None:
        """Partitions were revoked: drop every cached state (the tables hold them)."""
        self.streams.clear()
        self.dirty.clear()
        self.stage.parking.parked.clear()
        self.memo = JsonMemo()


@dataclass
class PatientEntry:
    resolver: PatientResolver
    seen: DedupeWindow  # event ids already resolved (a stage-1 replay re-produces them)

    def to_bytes(self, encode=event_text) -> bytes:
        return pack_state({"resolver": self.resolver.to_dict(encode), "seen": self.seen.to_dict()})

    @classmethod
    def from_bytes(cls, raw: bytes) -> PatientEntry:
        data = unpack_state(raw)
        return cls(PatientResolver.from_dict(data["resolver"]), DedupeWindow.from_dict(data["seen"]))


class StageTwoRunner:
    """Stage 2 keyed by patient: conflict resolution with an audit record per decision."""

    def __init__(self, rules: RuleSet, names: TopicNames, handed_over: HandOver | None = None):
        self.stage = Stage2(rules)
        self.handed_over = handed_over
        self.names = names
        self.dedupe_events = rules.kafka.stage2_dedupe_events
        self.patients: dict[bytes, tuple[PatientEntry, int]] = {}
        self.dirty: set[bytes] = set()
        self.audits = self.observations = 0  # flushed to the metric once per batch
        self.memo = JsonMemo()  # candidates' JSON: the normalized lines they came from

    def process_batch(self, records: list[InRecord], now: float, load) -> list[OutRecord]:
        outs: list[OutRecord] = []
        duplicates = 0
        STAGE_EVENTS.labels("stage2", "in").inc(len(records))
        memo = self.memo
        for record, line, event, problem in split_normalized(records, self.handed_over):
            if event is None or event.patient is None or record.key != event.patient.patient_id.encode():
                problem = problem or "normalized record without a matching patient binding"
                outs.append(dlq_record(self.names, "stage2", "decode", problem, record.value, record.key, record,
                                       event.event_id if event else None))
                continue
            memo.remember(event, line)
            entry = self.entry_for(record.key, record.partition, load)
            self.dirty.add(record.key)
            if not dedupe_event(entry.seen, event.event_id):
                duplicates += 1
                continue
            self.collect(record.key, self.stage.process(entry.resolver, event, now), outs)
        if duplicates:
            STAGE_EVENTS.labels("stage2", "duplicate").inc(duplicates)
        self.flush_counts()
        return outs

    def tick(self, now: float) -> list[OutRecord]:
        outs: list[OutRecord] = []
        for key, (entry, _) in self.patients.items():
            if entry.resolver.bucket_close:
                resolutions = self.stage.tick(entry.resolver, now)
                if resolutions:
                    self.dirty.add(key)
                    self.collect(key, resolutions, outs)
        self.flush_counts()
        return outs

    def entry_for(self, key: bytes, partition: int, load) -> PatientEntry:
        cached = self.patients.get(key)
        if cached is not None:
            return cached[0]
        raw = load(key)
        entry = (PatientEntry.from_bytes(raw) if raw is not None else
                 PatientEntry(self.stage.new_patient_state(key.decode()), DedupeWindow(self.dedupe_events)))
        self.patients[key] = (entry, partition)
        return entry

    def collect(self, key: bytes, resolutions: list[Resolution], outs: list[OutRecord]) -> None:
        names = self.names
        for res in resolutions:
            outs.append(OutRecord(names.audit, key, res.audit.to_json()))
            if res.observation is not None:
                topic = names.waveforms if res.observation.kind is EventKind.WAVEFORM else names.observations
                outs.append(OutRecord(topic, key, res.observation.to_json()))
        self.audits += len(resolutions)
        self.observations += sum(r.observation is not None for r in resolutions)

    def flush_counts(self) -> None:
        if self.audits:
            STAGE_EVENTS.labels("stage2", "audit").inc(self.audits)
            STAGE_EVENTS.labels("stage2", "observation").inc(self.observations)
        self.audits = self.observations = 0

    def take_state_writes(self) -> list[StateWrite]:
        encode = self.memo.encode
        writes = [StateWrite(key, self.patients[key][1], self.patients[key][0].to_bytes(encode))
                  for key in self.dirty if key in self.patients]
        self.dirty.clear()
        self.memo.checkpoint_done()
        return writes

    def forget(self) -> None:
        self.patients.clear()
        self.dirty.clear()
        self.memo = JsonMemo()
