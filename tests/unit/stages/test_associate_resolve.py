import pytest

from hub.events import AlarmPriority, AlarmState, Quality
from hub.pipeline import Stage1, Stage2
from hub.rules.load import load_rules
from hub.testing.factories import alarm_event, association_event, numeric_event

RULES = load_rules("rules")
T0 = 1_700_000_000.0
W = RULES.profile("vital").resolve_window_s  # one resolution bucket: [T0, T0 + W)
GRACE = RULES.profile("vital").resolve_grace_s


def run_stage1(stage, events, now):
    states, out = {}, []
    parked = []
    for e in events:
        state = states.setdefault(e.stream, stage.new_stream_state(e))
        result = stage.process(state, e, now)
        out += result.ready
        parked += result.parked
    for state in states.values():
        drained = stage.drain(state, now)
        out += drained.ready
        parked += drained.parked
    return out, parked


def test_event_without_binding_is_parked_and_released_by_admission():
    stage = Stage1(RULES)
    reading = numeric_event("MON-09", "147842", 70, "/min", t=T0)
    ready, parked = run_stage1(stage, [reading], now=T0)
    assert ready == [] and parked[0][1] == "no patient bound to location ICU1-BED09 at the reading's time"
    admit = association_event("ICU1-BED09", "MRN-9", t=T0 - 60, encounter_id="V9")
    state = stage.new_stream_state(admit)
    result = stage.process(state, admit, now=T0 + 5)
    assert [e.event_id for e in result.ready] == [reading.event_id]
    assert result.ready[0].patient.patient_id == "MRN-9" and result.unparked == 1


def test_binding_is_time_versioned_across_transfer():
    stage = Stage1(RULES)
    for ev in (association_event("ICU1-BED01", "MRN-A", t=T0), association_event("ICU1-BED01", "MRN-B", t=T0 + 100)):
        stage.process(stage.new_stream_state(ev), ev, now=T0)
    ready, _ = run_stage1(stage, [numeric_event("MON-01", t=T0 + 50, seq=1), numeric_event("MON-01", t=T0 + 150, seq=2)],
                          now=T0 + 200)
    assert [e.patient.patient_id for e in ready] == ["MRN-A", "MRN-B"]


def test_unknown_device_is_parked_with_reason():
    stage = Stage1(RULES)
    _, parked = run_stage1(stage, [numeric_event("GHOST-7", t=T0)], now=T0)
    assert "device GHOST-7 has no location" in parked[0][1]


def bound(event, patient="MRN-1"):
    from hub.events import PatientBinding
    return event.with_changes(patient=PatientBinding(patient_id=patient), location="ICU1-BED01")


def normalised(device, code, value, unit, t, seq=0, quality=frozenset()):
    from hub.normalise.codes import Normaliser, normalise_event
    source = {"ART": "arterial-line", "NIBP": "nibp", "MON": "monitor", "OXI": "pulse-oximeter"}[device.split("-")[0]]
    ev = numeric_event(device, code, value, unit, t=t, seq=seq, quality=quality).with_changes(source=source)
    ev = normalise_event(Normaliser.from_rules(RULES), ev)
    return bound(ev.with_changes(corrected_time=t))


def resolve_all(events, now):
    stage2 = Stage2(RULES)
    state = stage2.new_patient_state("MRN-1")
    out = []
    for e in events:
        out += stage2.process(state, e, now)
    out += stage2.drain(state)
    return out


def test_arterial_line_beats_cuff_and_audit_lists_all_candidates():
    art = normalised("ART-01", "150017", 121, "mmHg", T0 + W * 0.2)
    cuff = normalised("NIBP-01", "150021", 135, "mmHg", T0 + W * 0.6)
    [res] = resolve_all([cuff, art], now=T0)
    assert res.observation.event_id == art.event_id and res.observation.value == 121
    assert res.audit.policy == "source-rank" and {c.event_id for c in res.audit.candidates} == {art.event_id, cuff.event_id}
    assert "arterial-line ranks #1" in res.audit.reason


def test_invalid_arterial_value_falls_back_to_next_source():
    art = normalised("ART-01", "150017", 40, "mmHg", T0 + W * 0.2, quality={Quality.INVALID})
    cuff = normalised("NIBP-01", "150021", 118, "mmHg", T0 + W * 0.6)
    [res] = resolve_all([art, cuff], now=T0)
    assert res.observation.event_id == cuff.event_id


def test_disagreement_beyond_threshold_is_flagged_for_review():
    art = normalised("ART-01", "150017", 90, "mmHg", T0 + W * 0.2)
    cuff = normalised("NIBP-01", "150021", 140, "mmHg", T0 + W * 0.6)
    [res] = resolve_all([art, cuff], now=T0)
    assert res.audit.review is True and res.observation.event_id == art.event_id


def test_temperature_most_recent_valid():
    a = normalised("MON-01", "150364", 37.0, "Cel", T0 + W * 0.2, seq=1)
    b = normalised("MON-01", "150364", 37.4, "Cel", T0 + W * 0.8, seq=2)
    [res] = resolve_all([b, a], now=T0)
    assert res.observation.value == pytest.approx(37.4)


def test_bucket_closes_after_grace_not_before():
    stage2 = Stage2(RULES)
    state = stage2.new_patient_state("MRN-1")
    ev = normalised("MON-01", "150456", 97, "%", T0 + W * 0.5)
    assert stage2.process(state, ev, now=T0 + W * 0.5) == []
    assert stage2.tick(state, now=T0 + W + GRACE - 0.1) == []
    assert [r.observation.event_id for r in stage2.tick(state, now=T0 + W + GRACE + 0.1)] == [ev.event_id]


def test_alarm_most_severe_wins_across_devices_and_end_passes():
    stage2 = Stage2(RULES)
    state = stage2.new_patient_state("MRN-1")
    low = bound(alarm_event("OXI-02", "MDC_EVT_SPO2_LO", AlarmPriority.MEDIUM, t=T0))
    high = bound(alarm_event("MON-01", "MDC_EVT_SPO2_LO", AlarmPriority.HIGH, t=T0 + 1))
    [r1] = stage2.process(state, low, now=T0)
    [r2] = stage2.process(state, high, now=T0)
    [r3] = stage2.process(state, bound(alarm_event("OXI-02", "MDC_EVT_SPO2_LO", AlarmPriority.MEDIUM, seq=1, t=T0 + 2)), now=T0)
    assert r1.observation is not None and r2.observation is not None and r3.observation is None
    assert "higher/equal priority by MON-01" in r3.audit.reason
    end1 = bound(alarm_event("MON-01", "MDC_EVT_SPO2_LO", AlarmPriority.HIGH, AlarmState.INACTIVE, seq=2, t=T0 + 5))
    end2 = bound(alarm_event("OXI-02", "MDC_EVT_SPO2_LO", AlarmPriority.MEDIUM, AlarmState.INACTIVE, seq=3, t=T0 + 6))
    r4, handover = stage2.process(state, end1, now=T0)
    [r5] = stage2.process(state, end2, now=T0)
    assert r4.observation.event_id == end1.event_id  # the monitor's end reaches the alarm manager
    assert handover.observation.device.id == "OXI-02"  # and the oximeter's alarm is now the one that stands
    assert r5.observation is not None and r5.audit.reason.startswith("condition ended")


def test_resolver_state_round_trips_mid_bucket():
    from hub.resolve.resolver import PatientResolver
    stage2 = Stage2(RULES)
    state = stage2.new_patient_state("MRN-1")
    stage2.process(state, normalised("ART-01", "150017", 121, "mmHg", T0 + W * 0.2), now=T0)
    restored = PatientResolver.from_dict(state.to_dict())
    stage2.process(restored, normalised("NIBP-01", "150021", 135, "mmHg", T0 + W * 0.6), now=T0)
    [res] = stage2.drain(restored)
    assert len(res.audit.candidates) == 2 and res.observation.value == 121


def test_cancel_admit_and_cancel_discharge():
    from hub.associate import AssociationState, apply_association, associate_event
    from hub.events import Association
    state = AssociationState.from_rules(RULES)
    apply_association(state, Association(action="bind", location="ICU1-BED02", patient_id="MRN-X", valid_from=T0))
    apply_association(state, Association(action="unbind", location="ICU1-BED02", valid_from=T0 + 100,
                                         source_message="ADT^A03"))
    late = numeric_event("MON-02", t=T0 + 200)
    assert associate_event(state, late)[0] is None  # discharged
    apply_association(state, Association(action="cancel", location="ICU1-BED02", patient_id="MRN-X",
                                         valid_from=T0 + 150, source_message="ADT^A13"))
    assert associate_event(state, late)[0].patient.patient_id == "MRN-X"  # discharge cancelled
    apply_association(state, Association(action="cancel", location="ICU1-BED02", patient_id="MRN-X",
                                         valid_from=T0 + 160, source_message="ADT^A11"))
    assert associate_event(state, late)[0] is None  # admission cancelled
