"""The SQLite edge queue: order, lanes, ack/release, recovery, compaction, corruption."""

from __future__ import annotations

import sqlite3

import pytest

from edge_buffer.errors import QueueCorruptError
from edge_buffer.queue import ALARM_LANE, MAIN_LANE, EdgeQueue
from hub.events import DataClass, Event
from hub.rules.edge import EdgeRules


def test_append_commits_before_returning(queue_factory, event_factory, tmp_path):
    queue = queue_factory()
    result = queue.append_many([event_factory(DataClass.VITAL, i) for i in range(5)])
    assert (result.accepted, result.refused, result.shed) == (5, 0, {})
    # a second connection sees the rows: they are committed, not just in the writer's transaction
    other = sqlite3.connect(tmp_path / "buffer.db")
    assert other.execute("SELECT count(*) FROM events").fetchone()[0] == 5
    other.close()


def test_wal_and_durability_settings(queue_factory):
    full = queue_factory("full.db")
    normal = queue_factory("normal.db", durability="normal")
    assert full._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert full._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert normal._db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL


def test_lease_puts_alarms_first_then_insert_order(queue_factory, event_factory):
    queue = queue_factory()
    events = [event_factory(DataClass.VITAL, 0), event_factory(DataClass.TREND, 0), event_factory(DataClass.ALARM, 0),
              event_factory(DataClass.VITAL, 1), event_factory(DataClass.ALARM, 1), event_factory(DataClass.VITAL, 2)]
    queue.append_many(events)
    leased = queue.lease(100)
    assert [r.lane for r in leased] == [ALARM_LANE, ALARM_LANE, MAIN_LANE, MAIN_LANE, MAIN_LANE, MAIN_LANE]
    vitals = [r.seq for r in leased if r.stream == "MON-01/vital"]
    assert vitals == [0, 1, 2]
    assert Event.from_json(leased[0].payload) == events[2]


def test_lease_is_incremental_and_ack_deletes(queue_factory, event_factory):
    queue = queue_factory()
    queue.append_many([event_factory(DataClass.VITAL, i) for i in range(10)])
    first = queue.lease(4)
    second = queue.lease(4)
    assert [r.seq for r in first + second] == list(range(8))
    assert queue.ack([r.row_id for r in first]) == 4
    assert queue.rows == 6 and queue.leased == 4
    assert queue._db.execute("SELECT count(*) FROM events").fetchone()[0] == 6


def test_release_resends_unacked_rows_in_order(queue_factory, event_factory):
    queue = queue_factory()
    queue.append_many([event_factory(DataClass.VITAL, i) for i in range(10)])
    batch = queue.lease(6)
    queue.ack([batch[0].row_id, batch[1].row_id])
    assert queue.release() == 4
    again = queue.lease(100)
    assert [r.seq for r in again] == list(range(2, 10))


def test_ids_are_never_reused_after_the_queue_drains(queue_factory, event_factory):
    queue = queue_factory()
    queue.append_many([event_factory(DataClass.VITAL, i) for i in range(3)])
    queue.ack([r.row_id for r in queue.lease(10)])
    queue.append_many([event_factory(DataClass.VITAL, i) for i in range(3, 5)])
    assert [r.seq for r in queue.lease(10)] == [3, 4]


def test_restart_makes_leased_rows_pending_again(tmp_path, event_factory):
    settings = EdgeRules()
    queue = EdgeQueue(tmp_path / "b.db", settings)
    queue.append_many([event_factory(DataClass.VITAL, i) for i in range(5)] + [event_factory(DataClass.ALARM, 0)])
    queue.ack([queue.lease(2)[0].row_id])  # the alarm was delivered, one vital leased but never acknowledged
    queue.close()
    reopened = EdgeQueue(tmp_path / "b.db", settings)
    assert reopened.rows == 5 and reopened.depth("alarm") == 0
    assert [r.seq for r in reopened.lease(10)] == [0, 1, 2, 3, 4]
    reopened.close()


def test_compaction_returns_pages_of_delivered_rows(queue_factory, event_factory):
    queue = queue_factory()
    queue.append_many([event_factory(DataClass.WAVEFORM, i) for i in range(3000)])
    queue.compact()
    full = queue.file_bytes()
    queue.ack([r.row_id for r in queue.lease(3000)])
    queue.compact()
    assert queue.file_bytes() < full / 4
    assert queue.metrics.value("devsync_edge_compactions_total") == 2


def test_corrupt_file_is_refused_with_the_path(tmp_path, event_factory):
    path = tmp_path / "b.db"
    queue = EdgeQueue(path, EdgeRules())
    queue.append_many([event_factory(DataClass.WAVEFORM, i) for i in range(500)])
    queue.compact()
    queue.close()
    raw = bytearray(path.read_bytes())
    page = 4096
    for offset in range(3 * page, len(raw) - page, page):  # scribble over every page past the schema
        raw[offset + 8: offset + 200] = b"\xa5" * 192
    path.write_bytes(bytes(raw))
    with pytest.raises(QueueCorruptError, match=str(path)):
        EdgeQueue(path, EdgeRules())


def test_depth_bytes_and_oldest_age_metrics(queue_factory, event_factory):
    queue = queue_factory()
    events = [event_factory(DataClass.VITAL, i, now=1000.0) for i in range(3)] + [event_factory(DataClass.ALARM, 0, now=1000.0)]
    queue.append_many(events)
    stats = queue.stats(now=1100.0)
    assert stats.depth == {"vital": 3, "alarm": 1}
    assert stats.bytes == sum(len(e.to_json()) for e in events)
    m = queue.metrics
    assert m.value("devsync_edge_queue_depth_events", {"data_class": "vital"}) == 3
    assert m.value("devsync_edge_queue_bytes") == stats.bytes
    assert m.value("devsync_edge_queue_oldest_age_seconds") == pytest.approx(100.0)
    assert m.value("devsync_edge_appended_total", {"data_class": "vital"}) == 3


def test_disk_full_rolls_back_and_the_counts_follow(queue_factory, event_factory):
    queue = queue_factory()
    queue.append_many([event_factory(DataClass.VITAL, i) for i in range(10)])
    pages = queue._db.execute("PRAGMA page_count").fetchone()[0]
    queue._db.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own "database or disk is full"
    with pytest.raises(sqlite3.OperationalError, match="full"):
        queue.append_many([event_factory(DataClass.WAVEFORM, i) for i in range(200)])
    assert queue.rows == 10 == queue._db.execute("SELECT count(*) FROM events").fetchone()[0]
    assert queue.metrics.value("devsync_edge_appended_total", {"data_class": "waveform"}) == 0
    queue._db.execute("PRAGMA max_page_count = 1000000")
    assert queue.append_many([event_factory(DataClass.WAVEFORM, 0)]).accepted == 1
    assert queue.rows == 11


def test_alarms_of_mixed_streams_keep_stream_order(queue_factory, event_factory):
    """A polled device puts settings and alarms on one stream: its alarms may not overtake its older
    settings; alarm-only streams still go first."""
    from edge_buffer.traffic import StreamSpec, build_event
    from hub.events import Device

    queue = queue_factory()
    pump = StreamSpec(Device(id="PUMP-01", type="infusion-pump"), DataClass.SETTING, 1.0)
    mixed = [build_event(pump, 0, 1.0), build_event(pump, 1, 2.0).with_changes(data_class=DataClass.ALARM),
             build_event(pump, 2, 3.0)]
    alarm_only = event_factory(DataClass.ALARM, 0)
    queue.append_many([*mixed, alarm_only])
    leased = queue.lease(10)
    assert leased[0].stream == alarm_only.stream and leased[0].lane == ALARM_LANE
    assert [(r.stream, r.seq) for r in leased[1:]] == [(pump.stream, 0), (pump.stream, 1), (pump.stream, 2)]
    assert leased[2].data_class == "alarm" and leased[2].lane == MAIN_LANE


def test_mixed_streams_are_remembered_across_restarts(tmp_path, event_factory):
    from edge_buffer.traffic import StreamSpec, build_event
    from hub.events import Device

    pump = StreamSpec(Device(id="PUMP-01", type="infusion-pump"), DataClass.SETTING, 1.0)
    queue = EdgeQueue(tmp_path / "b.db", EdgeRules())
    queue.append_many([build_event(pump, 0, 1.0)])
    queue.close()
    reopened = EdgeQueue(tmp_path / "b.db", EdgeRules())
    reopened.append_many([build_event(pump, 1, 2.0).with_changes(data_class=DataClass.ALARM)])
    assert [(r.seq, r.lane) for r in reopened.lease(10)] == [(0, MAIN_LANE), (1, MAIN_LANE)]
    reopened.close()
