"""Guard between faust and the stages: every offset of a partition reaches a stage once, in order.

Measured here (tests/integration/kafka, worker restarted under load): faust-streaming
0.15.3 sometimes hands an agent a batch that starts some records after the previous one
ended, on every partition at once (seen right after a worker joined), and later hands
over an offset it already delivered. faust counts the skipped offsets as a "gap" and
commits past them, so without this guard those records would be lost silently.

The guard tracks the last offset processed per partition (starting from the group's
committed offset when a partition is first seen), reads any skipped range directly with
a confluent-kafka consumer (assign + seek, read_committed) and puts it in front of the
batch, and drops records at or below the last processed offset (already processed).
Each repair is logged and counted (devsync_kafka_offset_repairs_total).
"""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, TopicPartition

from hub.logs import get_logger
from hub.runtime.kafka_metrics import OFFSET_REPAIRS
from hub.runtime.kafka_stages import InRecord

log = get_logger("kafka.offsets")


class OffsetGuard:
    def __init__(self, client_config: dict, group_id: str, stage: str, fetch_timeout_s: float = 10.0):
        self.config = client_config
        self.group_id = group_id
        self.stage = stage
        self.fetch_timeout_s = fetch_timeout_s
        self.last: dict[tuple[str, int], int] = {}
        self._group_reader: Consumer | None = None
        self._fetcher: Consumer | None = None

    def forget(self) -> None:
        """Partitions were revoked: start again from the committed offsets."""
        self.last.clear()

    def next_offset(self, topic: str, partition: int) -> int:
        """The first offset of the partition not yet processed (blocking on first sight: the group's commit)."""
        tp = (topic, partition)
        last = self.last.get(tp)
        if last is None:
            last = self.last[tp] = self.committed(tp) - 1
        return last + 1

    def ready_for(self, parts: dict) -> bool:
        """Whether `check` can run without I/O: every partition seen before, none skipping ahead."""
        last = self.last
        for tp, records in parts.items():
            seen = last.get((tp.topic, tp.partition))
            if seen is None or (records and records[0].offset > seen + 1):
                return False
        return True

    def check(self, records: list[InRecord]) -> list[InRecord]:
        """The batch with skipped ranges filled in and repeated offsets dropped (blocking: run in a thread)."""
        out: list[InRecord] = []
        for record in records:
            tp = (record.topic, record.partition)
            last = self.last.get(tp)
            if last is None:
                last = self.committed(tp) - 1
            if record.offset <= last:
                OFFSET_REPAIRS.labels(self.stage, "repeated").inc()
                continue
            if record.offset > last + 1:
                missing = self.fetch(tp, last + 1, record.offset)
                OFFSET_REPAIRS.labels(self.stage, "skipped").inc(len(missing))
                log.warning("records skipped by the consumer: read them directly", topic=record.topic,
                            partition=record.partition, first=last + 1, last=record.offset - 1, read=len(missing))
                out += missing
            out.append(record)
            self.last[tp] = record.offset
        return out

    def committed(self, tp: tuple[str, int]) -> int:
        if self._group_reader is None:  # reads the group's offsets; never joins or commits
            self._group_reader = Consumer({**self.config, "group.id": self.group_id, "enable.auto.commit": False})
        result = self._group_reader.committed([TopicPartition(*tp)], timeout=10)[0]
        return result.offset if result.offset >= 0 else 0

    def fetch(self, tp: tuple[str, int], first: int, end: int) -> list[InRecord]:
        """Records first..end-1 of one partition (fewer if some offsets hold no record)."""
        if self._fetcher is None:
            self._fetcher = Consumer({**self.config, "group.id": f"devsync-repair-{uuid.uuid4().hex[:12]}",
                                      "enable.auto.commit": False, "isolation.level": "read_committed"})
        self._fetcher.assign([TopicPartition(tp[0], tp[1], first)])
        out: list[InRecord] = []
        deadline = time.monotonic() + self.fetch_timeout_s
        while time.monotonic() < deadline:
            for msg in self._fetcher.consume(1000, 0.2):
                if msg.error() or msg.offset() >= end:
                    continue
                out.append(InRecord(msg.key(), msg.value(), msg.topic(), msg.partition(), msg.offset()))
            if out and out[-1].offset >= end - 1:
                break
        self._fetcher.unassign()
        return out
