"""Quota and shedding: oldest sheddable first, never alarms, counted, alerted; back-pressure when only alarms."""

from __future__ import annotations

from collections import Counter

import pytest

from hub.events import DataClass, Event


def _classes_left(queue) -> Counter:
    return Counter(dict(queue._db.execute("SELECT data_class, count(*) FROM events GROUP BY data_class").fetchall()))


def test_row_quota_sheds_oldest_in_shed_order_and_never_alarms(queue_factory, event_factory):
    queue = queue_factory(quota_rows=100, fill_warning_levels=[0.5, 0.9])
    emitted = Counter()
    for i in range(60):  # 240 events, 60 of each class, interleaved like live traffic
        batch = [event_factory(c, i) for c in (DataClass.VITAL, DataClass.WAVEFORM, DataClass.ALARM, DataClass.TREND)]
        result = queue.append_many(batch)
        assert result.refused == 0
        emitted.update(e.data_class.value for e in batch)
    left = _classes_left(queue)
    assert queue.rows == 100 == sum(left.values())
    assert left["alarm"] == 60  # every alarm kept
    m = queue.metrics
    shed = {c: m.value("devsync_edge_shed_total", {"reason": "quota-rows", "data_class": c}) for c in emitted}
    assert shed["alarm"] == 0
    for cls in emitted:  # the shed count is exactly what is missing, per class
        assert shed[cls] == emitted[cls] - left[cls]
    # shed_order: waveform goes before trend before vital (rows of the current batch are never shed)
    assert left["waveform"] <= 1 and left["trend"] <= left["vital"]
    assert m.value("devsync_edge_shedding_alert") == 1
    assert m.value("devsync_edge_fill_warning_level") == 0.9
    # what is left of a shed class is its newest rows
    seqs = [r[0] for r in queue._db.execute("SELECT seq FROM events WHERE data_class='vital' ORDER BY id")]
    assert seqs == list(range(60 - len(seqs), 60))


def test_byte_quota_counts_payload_bytes(queue_factory, event_factory):
    one = len(event_factory(DataClass.VITAL, 0).to_json())
    queue = queue_factory(quota_bytes=one * 20 + 10)
    for i in range(50):
        queue.append_many([event_factory(DataClass.VITAL, i)])
    assert queue.bytes <= one * 20 + 10
    assert queue.rows >= 19
    shed = queue.metrics.value("devsync_edge_shed_total", {"reason": "quota-bytes", "data_class": "vital"})
    assert shed == 50 - queue.rows


def test_only_alarms_left_refuses_with_back_pressure(queue_factory, event_factory):
    queue = queue_factory(quota_rows=10)
    result = queue.append_many([event_factory(DataClass.ALARM, i) for i in range(8)])
    assert result.accepted == 8
    result = queue.append_many([event_factory(DataClass.ALARM, i) for i in range(8, 14)])
    assert (result.accepted, result.refused, result.refuse_reason) == (2, 4, "quota-rows")
    result = queue.append_many([event_factory(DataClass.VITAL, 0)])
    assert result.refused == 1  # nothing sheddable: the vital is refused too, no alarm is dropped
    assert queue.rows == 10 and _classes_left(queue)["alarm"] == 10
    assert queue.metrics.value("devsync_edge_refused_total", {"reason": "quota-rows"}) == 5
    assert queue.metrics.value("devsync_edge_shedding_alert") == 1


def test_refuse_policy_never_sheds(queue_factory, event_factory):
    queue = queue_factory(quota_rows=5, shed_policy="refuse")
    result = queue.append_many([event_factory(DataClass.WAVEFORM, i) for i in range(7)])
    assert (result.accepted, result.refused, result.shed) == (5, 2, {})


def test_leased_rows_are_never_shed(queue_factory, event_factory):
    queue = queue_factory(quota_rows=10)
    queue.append_many([event_factory(DataClass.VITAL, i) for i in range(10)])
    in_flight = queue.lease(10)
    result = queue.append_many([event_factory(DataClass.VITAL, 10)])
    assert result.refused == 1 and not result.shed  # everything sheddable is in flight: back-pressure
    queue.ack([r.row_id for r in in_flight])
    assert queue.append_many([event_factory(DataClass.VITAL, 11)]).accepted == 1


def test_alert_clears_once_below_first_warning_level(queue_factory, event_factory):
    queue = queue_factory(quota_rows=10, fill_warning_levels=[0.5, 0.8])
    queue.append_many([event_factory(DataClass.VITAL, i) for i in range(12)])
    assert queue.metrics.value("devsync_edge_shedding_alert") == 1
    queue.ack([r.row_id for r in queue.lease(8)])
    assert queue.metrics.value("devsync_edge_shedding_alert") == 0
    assert queue.metrics.value("devsync_edge_fill_warning_level") == 0


def test_shedding_is_logged(queue_factory, event_factory, caplog):
    queue = queue_factory(quota_rows=3)
    with caplog.at_level("WARNING", logger="devsync.edge.queue"):
        for i in range(5):
            queue.append_many([event_factory(DataClass.TREND, i)])
    text = caplog.text
    assert text.count("shed oldest events") == 2 and "data_class=trend events=1" in text


@pytest.mark.parametrize("bad", [["alarm"], ["vital", "association"]])
def test_alarms_and_associations_cannot_be_in_shed_order(bad):
    from pydantic import ValidationError

    from hub.rules.edge import EdgeRules

    with pytest.raises(ValidationError, match="may never be shed"):
        EdgeRules(shed_order=bad)


def test_shed_rows_are_the_oldest_event_ids(queue_factory, event_factory):
    queue = queue_factory(quota_rows=5)
    events = [event_factory(DataClass.VITAL, i) for i in range(8)]
    for e in events:
        queue.append_many([e])
    kept = [Event.from_json(r.payload).event_id for r in queue.lease(10)]
    assert kept == [e.event_id for e in events[3:]]
