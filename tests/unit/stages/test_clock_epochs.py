"""Stage 1 across device clock jumps: resends vs new readings under reused device times, readings
held while a backward jump is unconfirmed, and sequence numbers that follow the clock."""

from __future__ import annotations

from hub.events import Quality, make_event_id
from hub.ordering.dedupe import DedupeWindow, dedupe_reading, is_resend
from hub.pipeline import Stage1
from hub.rules.load import load_rules
from hub.testing.factories import association_event, numeric_event

RULES = load_rules("rules")
TOL = RULES.clocks.jump_threshold_s
HOUR = 3600.0
T0 = 1_800_000_000.0


def test_resend_with_the_same_offset_is_a_duplicate():
    window = DedupeWindow(16)
    assert dedupe_reading(window, "a", 0.2, TOL, clock_offset=0.1) == "a"
    assert is_resend(window, "a", 5.0, TOL)
    assert dedupe_reading(window, "a", 5.0, TOL, clock_offset=0.1) is None


def test_delayed_resend_while_the_clock_has_not_moved_is_a_duplicate():
    window = DedupeWindow(16)
    dedupe_reading(window, "a", 0.2, TOL, clock_offset=0.1)
    assert not is_resend(window, "a", 600.0, TOL)  # ten minutes late: offset differs by more than the threshold
    assert dedupe_reading(window, "a", 600.0, TOL, clock_offset=0.1) is None


def test_new_reading_under_a_reused_id_after_the_clock_moved_is_re_keyed_deterministically():
    window = DedupeWindow(16)
    dedupe_reading(window, "a", -HOUR, TOL, clock_offset=-HOUR)  # first copy: clock an hour ahead
    key = dedupe_reading(window, "a", 0.3, TOL, clock_offset=0.2)  # clock right again, same device time
    assert key == make_event_id("a", "clock-epoch", 1)
    assert dedupe_reading(window, "a", 0.4, TOL, clock_offset=0.2) is None  # its resend
    again = DedupeWindow.from_dict(window.to_dict())
    assert dedupe_reading(again, "a", 0.5, TOL, clock_offset=0.2) is None  # state survives a restart


def test_windows_from_before_offsets_were_kept_still_dedupe():
    window = DedupeWindow.from_dict({"capacity": 4, "ids": ["a"]})
    assert is_resend(window, "a", 9999.0, TOL)


def run(stage, state, events):
    ready = []
    for now, event in events:
        ready += stage.process(state, event, now).ready
    return ready


def test_backward_jump_readings_wait_for_confirmation_then_take_the_new_offset():
    stage = Stage1(RULES)
    bind = association_event("ICU1-BED01", "MRN-1", t=T0 - HOUR)
    stage.process(stage.new_stream_state(bind), bind, now=T0)
    first = numeric_event("MON-01", t=T0 + HOUR, received=T0, seq=int((T0 + HOUR) * 1000))
    state = stage.new_stream_state(first)
    readings = [(T0 + 20 * k, numeric_event("MON-01", value=60 + k, t=T0 + HOUR + 20 * k, received=T0 + 20 * k,
                                            seq=int((T0 + HOUR + 20 * k) * 1000))) for k in range(10)]
    # then the device clock goes back to the right time: device time == hub time
    readings += [(T0 + 20 * k, numeric_event("MON-01", value=60 + k, t=T0 + 20 * k, received=T0 + 20 * k + 0.1,
                                             seq=int((T0 + 20 * k) * 1000))) for k in range(10, 16)]
    out = []
    for now, event in readings:
        result = stage.process(state, event, now)
        out += result.ready
        assert result.late == 0
        if now == T0 + 200:  # first reading after the jump back: suspect, held
            assert len(state.clock_held) == 1
    out += stage.drain(state, T0 + 1000).ready
    assert len(out) == 16
    after = [e for e in out if e.device_time < T0 + HOUR]
    assert all(abs(e.corrected_time - e.device_time) < RULES.clocks.min_correction_s for e in after)
    held = after[: RULES.clocks.jump_confirm_samples]
    assert all(Quality.CLOCK_JUMP in e.quality for e in held)
    assert [e.value for e in out] == [60.0 + k for k in range(16)]  # order kept across the jump


def test_suspect_reading_is_released_with_the_old_offset_when_nothing_confirms_it():
    stage = Stage1(RULES)
    bind = association_event("ICU1-BED01", "MRN-1", t=T0 - HOUR)
    stage.process(stage.new_stream_state(bind), bind, now=T0)
    events = [numeric_event("MON-01", t=T0 + k, received=T0 + k + 0.1, seq=k) for k in range(5)]
    state = stage.new_stream_state(events[0])
    for e in events:
        stage.process(state, e, e.received_time)
    delayed = numeric_event("MON-01", value=99, t=T0 + 5, received=T0 + 5 + 2 * TOL, seq=5)  # delayed, not a jump
    stage.process(state, delayed, delayed.received_time)
    assert state.clock_held
    assert not stage.tick(state, delayed.received_time + 1).ready and state.clock_held
    late = delayed.received_time + RULES.clocks.suspect_hold_s
    released = stage.tick(state, late).ready + stage.drain(state, late + 100).ready
    assert [e.value for e in released][-1] == 99.0
    assert released[-1].corrected_time == released[-1].device_time  # old offset (0): it was only delayed
    assert Quality.CLOCK_JUMP not in released[-1].quality
    assert not state.clock_held
