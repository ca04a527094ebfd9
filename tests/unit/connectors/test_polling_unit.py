"""Polling: parsing, token bucket, backoff, jitter, staleness and the poll loop under fake time."""

from __future__ import annotations

import asyncio
import random

import pytest

from connectors.poll_records import (
    DeviceState,
    build_events,
    check_staleness,
    parse_status_json,
    parse_status_line,
    record_from_values,
    staleness_limits,
)
from connectors.polling import (
    PollError,
    PollingConnector,
    PollSettings,
    TokenBucket,
    backoff_delay,
    next_poll_delay,
)
from hub.errors import DecodeError, RuleError
from hub.events import AlarmPhase, DataClass, EventKind, Quality


class FakeTransport:
    """Answers from a script: a dict is an answer, an exception is raised."""

    def __init__(self, script):
        self.script = list(script)
        self.calls = 0

    async def fetch(self):
        self.calls += 1
        item = self.script.pop(0) if self.script else self.last
        self.last = item
        if isinstance(item, Exception):
            raise item
        return dict(item)

    async def close(self):
        return None


def pump_connector(rules_factory, pump_type_factory, fake_time, script, **connector):
    rules = rules_factory([pump_type_factory(**connector)],
                          [{"id": "PUMP-01", "type": "infusion-pump", "location": "ICU1-BED01",
                            "connector": {"port": 7001}}])
    errors = []
    conn = PollingConnector.from_rules(rules, devices=rules.devices, clock=fake_time.clock, sleep=fake_time.sleep,
                                       rng=random.Random(7), on_error=lambda d, e: errors.append((d, e)))
    conn.pollers[0].transport = FakeTransport(script)
    return conn, conn.pollers[0], errors


def answer(t, rate="12.5", alarm="NONE"):
    return {"RATE": rate, "VTBI": "250", "VI": "3.5", "STATE": "RUNNING", "ALARM": alarm, "TIME": str(t)}


def test_parse_status_line_reads_pairs():
    assert parse_status_line(b"RATE=12.5;STATE=RUNNING\n") == {"RATE": "12.5", "STATE": "RUNNING"}


@pytest.mark.parametrize("line, needle", [
    (b"\x02#@! PUMP FAULT\n", "is not KEY=VALUE"),
    (b"\n", "empty answer"),
    (b"RATE=1;RATE=2\n", "appears twice"),
    (b"RATE=\xff\n", "not UTF-8"),
])
def test_parse_status_line_rejects_garbage_with_the_reason(line, needle):
    with pytest.raises(DecodeError, match=needle):
        parse_status_line(line)


def test_parse_status_json_rejects_nested_and_non_json():
    assert parse_status_json(b'{"SPO2": 97, "STATE": "OK"}') == {"SPO2": "97", "STATE": "OK"}
    with pytest.raises(DecodeError, match="not JSON"):
        parse_status_json(b"<html>")
    with pytest.raises(DecodeError, match="SPO2"):
        parse_status_json(b'{"SPO2": {"v": 97}}')


def test_record_time_field_must_be_epoch_seconds():
    assert record_from_values({"TIME": "5.5", "A": "1"}, "TIME", 9.0).device_time == 5.5
    assert record_from_values({"A": "1"}, "TIME", 9.0).device_time == 9.0
    with pytest.raises(DecodeError, match="TIME"):
        record_from_values({"TIME": "noon"}, "TIME", 9.0)


def test_token_bucket_allows_one_request_per_ten_seconds():
    bucket = TokenBucket(0.1, 1, now=0.0)
    assert bucket.wait_time(0.0) == 0.0
    bucket.take(0.0)
    assert bucket.wait_time(1.0) == pytest.approx(9.0)
    assert bucket.wait_time(10.0) == 0.0


def test_backoff_grows_exponentially_up_to_the_cap():
    assert [backoff_delay(n, 1.0, 2.0, 10.0) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_jitter_stays_within_bounds():
    rng = random.Random(1)
    delays = [next_poll_delay(0, 10.0, 1.0, PollSettings(), rng) for _ in range(200)]
    assert all(10.0 <= d <= 11.0 for d in delays) and len(set(delays)) > 100


def test_poll_loop_respects_rate_limit_timestamps_and_seq(rules_factory, pump_type_factory, fake_time):
    _conn, poller, _ = pump_connector(rules_factory, pump_type_factory, fake_time,
                                     [answer(fake_time.now + i) for i in range(5)], interval_s=2, jitter_s=0)
    emitted = []

    async def emit(e):
        emitted.append(e)

    async def run():
        for _ in range(5):
            for e in await poller.poll_once():
                await emit(e)
            await fake_time.sleep(poller.next_delay())

    asyncio.run(run())
    gaps = [b - a for a, b in zip(poller.request_times, poller.request_times[1:])]
    assert gaps and all(g >= 10.0 - 1e-9 for g in gaps)  # interval 2 s, but the bucket allows 1 / 10 s
    seqs = [e.seq for e in emitted]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert all(e.received_time and e.device_time for e in emitted)
    rate = [e for e in emitted if e.code_sent == "MDC_FLOW_FLUID_PUMP"]
    assert len(rate) == 5 and rate[0].value_sent == 12.5 and rate[0].mdc_code == 157784
    assert rate[0].data_class is DataClass.SETTING and rate[0].stream == "PUMP-01/poll"
    assert {e.kind for e in emitted} == {EventKind.NUMERIC, EventKind.DEVICE_STATUS}


def test_failures_back_off_then_recover(rules_factory, pump_type_factory, fake_time):
    script = [PollError("timeout", "no answer"), PollError("refused", "refused"), DecodeError("garbage"),
              answer(fake_time.now)]
    conn, poller, errors = pump_connector(rules_factory, pump_type_factory, fake_time, script,
                                          rate_limit_per_s=100, backoff_initial_s=1, backoff_max_s=3)

    async def run():
        delays = []
        for _ in range(4):
            events = await poller.poll_once()
            delays.append(poller.next_delay())
        return delays, events

    delays, events = asyncio.run(run())
    assert delays[:3] == [1, 2, 3] and delays[3] >= 10  # capped backoff, then the normal interval
    assert [type(e).__name__ for _, e in errors] == ["PollError", "PollError", "DecodeError"]
    assert events and poller.failures == 0
    assert conn.health()["status"] == "up"


def test_alarm_field_gives_start_and_end(rules_factory, pump_type_factory, fake_time):
    t = fake_time.now
    _conn, poller, _ = pump_connector(rules_factory, pump_type_factory, fake_time,
                                     [answer(t), answer(t + 10, alarm="OCCLUSION"), answer(t + 20, alarm="OCCLUSION"),
                                      answer(t + 30)], rate_limit_per_s=100)

    async def run():
        out = []
        for _ in range(4):
            out += [e for e in await poller.poll_once() if e.kind is EventKind.ALARM]
        return out

    alarms = asyncio.run(run())
    assert [(a.alarm.condition, a.alarm.phase) for a in alarms] == [("OCCLUSION", AlarmPhase.START),
                                                                    ("OCCLUSION", AlarmPhase.END)]
    assert alarms[0].alarm.alarm_id == alarms[1].alarm.alarm_id


def test_bad_value_rejects_the_whole_answer(rules_factory, pump_type_factory, fake_time):
    rules = rules_factory([pump_type_factory()], [{"id": "P", "type": "infusion-pump", "connector": {"port": 1}}])
    state = DeviceState.for_device(rules.devices[0], rules.device_types[0], stream="P/poll", connector="poll-tcp",
                                   now=0.0)
    settings = PollSettings.model_validate(rules.device_types[0].connector)
    before = state.seq.value
    with pytest.raises(DecodeError, match="RATE"):
        build_events(state, record_from_values(answer(1.0, rate="fast"), "TIME", 1.0), settings, 1.0)
    assert state.seq.value == before and not state.last_fresh


@pytest.mark.parametrize("action, flag", [("flag-stale", Quality.STALE), ("flag-missing", Quality.MISSING)])
def test_staleness_action_per_data_class(rules_factory, pump_type_factory, action, flag):
    profiles = {"setting": {"latency_budget_s": 1, "staleness_limit_s": 60, "staleness_action": action}}
    rules = rules_factory([pump_type_factory()], [{"id": "P", "type": "infusion-pump", "connector": {"port": 1}}],
                          profiles=profiles)
    state = DeviceState.for_device(rules.devices[0], rules.device_types[0], stream="P/poll", connector="poll-tcp",
                                   now=0.0)
    settings = PollSettings.model_validate(rules.device_types[0].connector)
    fresh = build_events(state, record_from_values(answer(100.0), "TIME", 100.0), settings, 100.0)
    limits = staleness_limits(rules)
    assert check_staleness(state, limits, 160.0) == []
    marked = check_staleness(state, limits, 161.0)
    assert {e.code_sent for e in marked} == {"MDC_FLOW_FLUID_PUMP", "VTBI", "VI"}  # settings only, not status
    assert all(flag in e.quality for e in marked)
    rate = next(e for e in marked if e.code_sent == "MDC_FLOW_FLUID_PUMP")
    if flag is Quality.STALE:
        assert rate.value_sent == 12.5 and rate.device_time == 100.0  # last known value, original time
    else:
        assert rate.value_sent is None and rate.device_time == 161.0
    assert rate.event_id not in {e.event_id for e in fresh} and rate.seq > max(e.seq for e in fresh)
    assert check_staleness(state, limits, 200.0) == []  # once per episode


def test_missing_port_and_bad_settings_name_the_device_and_field(rules_factory, pump_type_factory):
    rules = rules_factory([pump_type_factory()], [{"id": "PUMP-09", "type": "infusion-pump"}])
    with pytest.raises(RuleError, match=r"PUMP-09.*connector\.port"):
        PollingConnector.from_rules(rules, devices=rules.devices)
    rules = rules_factory([pump_type_factory()], [{"id": "PUMP-09", "type": "infusion-pump",
                                                   "connector": {"port": 1, "timeout": 3}}])
    with pytest.raises(RuleError, match=r"devices\[PUMP-09\]\.connector\.timeout"):
        PollingConnector.from_rules(rules, devices=rules.devices)
