"""Properties of the ordering and resolution stages (hypothesis)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.events import PatientBinding, Quality
from hub.normalise.codes import Normaliser, normalise_event
from hub.pipeline import Stage1, Stage2
from hub.rules.load import load_rules
from hub.testing.factories import association_event, numeric_event

RULES = load_rules("rules")
WINDOW = RULES.profile("vital").reorder_window_s
T0 = 1_700_000_000.0


@st.composite
def deliveries(draw):
    """Unique readings on one stream, each delivered 1-3 times with a delay below the reorder window.

    Arrivals are (arrival, seq, sent): the device stamps each reading with the time it sent it (a
    device clock that runs with the hub's; clock jumps are tests/unit/stages/test_clock_epochs.py's)."""
    n = draw(st.integers(1, 40))
    gaps = draw(st.lists(st.integers(1, 3), min_size=n, max_size=n))
    seqs = [sum(gaps[: i + 1]) for i in range(n)]
    step = draw(st.floats(0.01, 1.0))
    sends = [i * step for i in range(n)]
    arrivals = []
    for seq, sent in zip(seqs, sends, strict=True):
        copies = draw(st.integers(1, 3))
        for _ in range(copies):
            arrivals.append((sent + draw(st.floats(0, WINDOW * 0.99)), seq, sent))
    ticks = draw(st.lists(st.floats(0, max(sends) + WINDOW), max_size=10))
    return seqs, sorted(arrivals), ticks


@settings(max_examples=300, deadline=None)
@given(deliveries())
def test_dedupe_and_reorder_output_is_sorted_unique_input(case):
    seqs, arrivals, ticks = case
    stage = Stage1(RULES)
    admit = association_event("ICU1-BED01", "MRN-1", t=0.0)
    stage.process(stage.new_stream_state(admit), admit, now=T0)
    state = None
    out = []
    timeline = sorted([(t, "arrive", (s, sent)) for t, s, sent in arrivals] + [(t, "tick", None) for t in ticks],
                      key=lambda x: (x[0], x[1]))
    for t, what, reading in timeline:
        now = T0 + t
        if what == "tick":
            if state is not None:
                out += stage.tick(state, now).ready
            continue
        seq, sent = reading
        event = numeric_event("MON-01", "147842", 60 + seq % 50, "/min", seq=seq, t=T0 + sent, received=now,
                              stream="MON-01/hr", event_id=f"reading-{seq}")
        state = state or stage.new_stream_state(event)
        result = stage.process(state, event, now)
        assert result.late == 0
        out += result.ready
    out += stage.drain(state, T0 + 10_000).ready
    assert [e.seq for e in out] == seqs
    assert not any(Quality.LATE in e.quality for e in out)


NORM = Normaliser.from_rules(RULES)
SOURCES = {"ART-01": ("150017", "arterial-line"), "NIBP-01": ("150021", "nibp"), "MON-01": ("150033", "monitor")}


@st.composite
def candidate_sets(draw):
    devices = draw(st.lists(st.sampled_from(sorted(SOURCES)), min_size=1, max_size=8))
    events = []
    for i, device in enumerate(devices):
        code, source = SOURCES[device]
        t = T0 + draw(st.floats(0, RULES.profile('vital').resolve_window_s * 0.99))
        quality = draw(st.sampled_from([frozenset(), frozenset({Quality.INVALID}), frozenset({Quality.QUESTIONABLE})]))
        ev = numeric_event(device, code, draw(st.integers(60, 200)), "mmHg", seq=i, t=t, quality=quality)
        ev = normalise_event(NORM, ev.with_changes(source=source, corrected_time=t))
        events.append(ev.with_changes(patient=PatientBinding(patient_id="MRN-1")))
    return events


def resolve_in_order(events):
    stage2 = Stage2(RULES)
    state = stage2.new_patient_state("MRN-1")
    out = []
    for e in events:
        out += stage2.process(state, e, now=T0)
    out += stage2.drain(state)
    return [(r.observation.event_id if r.observation else None, r.observation.value if r.observation else None,
             r.audit.decision_id, r.audit.reason, r.audit.candidates) for r in out]


@settings(max_examples=300, deadline=None)
@given(candidate_sets(), st.randoms(use_true_random=False))
def test_resolution_does_not_depend_on_arrival_order(events, rnd):
    shuffled = list(events)
    rnd.shuffle(shuffled)
    assert resolve_in_order(events) == resolve_in_order(shuffled)
