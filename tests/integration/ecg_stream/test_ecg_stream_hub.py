"""Streaming ECG through the hub, in real time: 10 simulated patients, 12 leads at 500 Hz, 60 s.

Devices stream real ECG (PTB s0010_re resampled to 500 Hz) over TCP with 50 ms of jitter;
device 2 loses one packet (a gap), device 4 sends one packet twice (an overlap), device 6
has a 5 s asystole, device 8 raises a device alarm, devices run with different clock offsets.
Everything goes connector -> EmbeddedRuntime (stages 1 and 2) -> a recording sink. One run
(module fixture) is checked by every test below; the latency figures are printed, not asserted.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import defaultdict

import numpy as np
import pytest

from connectors.ecg_stream.alarms import ASYSTOLE
from connectors.ecg_stream.events import PARTIAL_STATUS
from connectors.ecg_stream.harness import Scenario, run_stream_scenario
from connectors.ecg_stream.source import STANDARD_12
from hub.events import EventKind, Quality
from hub.render.sampled_data import MISSING_SAMPLE, build_sampled_data_observation, strip_from_waveform
from hub.render.validate import validate_observation
from hub.rules.load import load_rules

pytestmark = pytest.mark.integration
SECONDS = 60.0
FS = 500.0
LOST_PACKET = 300          # device 2: samples 6000..6019 (12.00-12.04 s) never sent
RESENT = {400: 395}        # device 4: packet 395 sent again after 400
PAUSE = (20.0, 5.0)        # device 6: flat line 20-25 s
DEVICE_ALARM_AT = 40.0     # device 8
OFFSETS = (0.0, -2.5, 1.25, 30.0, -0.4)


@pytest.fixture(scope="module")
def run(request):
    scenario = Scenario(devices=10, seconds=SECONDS, sample_rate_hz=FS, leads=STANDARD_12, jitter_s=0.05,
                        jitter_buffer_s=1.0, chunk_s=1.0, clock_offsets_s=OFFSETS, lose={2: {LOST_PACKET}},
                        resend={4: RESENT}, pause={6: PAUSE}, device_alarm_at={8: DEVICE_ALARM_AT},
                        ecg={"alarms": {"partial_record_s": 10.0, "pause_s": 3.0}})
    # bounded: a stuck run fails here instead of eating the suite's timeout
    result = asyncio.run(asyncio.wait_for(run_stream_scenario(scenario, load_rules("rules")), SECONDS + 120))
    stats = result.stats()
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():  # the figure is the point: show it in every run
        print(f"\nECG stream, 10 patients x 12 leads x {FS:g} Hz x {SECONDS:g} s, sample time -> sink (s): "
              f"{json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in stats.items()})}")
    return result


def test_every_patient_gets_the_whole_stream_in_order(run):
    streams = defaultdict(list)
    for event in run.waveforms():
        if event.status != PARTIAL_STATUS:
            streams[event.stream].append(event)
    assert len(streams) == 10
    for name, events in streams.items():
        seqs = [e.seq for e in events]
        assert seqs == sorted(set(seqs)), f"{name}: reordered or duplicated {seqs}"
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"{name}: chunks missing {seqs}"
        assert len(events) >= SECONDS - 4  # the last second(s) may still be in the jitter buffer at stop
        starts = [e.waveform.start_time for e in events]
        assert all(b - a == pytest.approx(1.0, abs=1e-6) for a, b in itertools.pairwise(starts))
        wave = events[1].waveform
        assert wave.leads[:3] == ("MDC_ECG_LEAD_I", "MDC_ECG_LEAD_II", "MDC_ECG_LEAD_III") and len(wave.leads) == 12
        assert wave.sample_rate_hz == FS and all(len(lead) == FS for lead in wave.samples)
        assert {e.patient.patient_id for e in events} == {f"PAT-ECG-{name[5:7]}"}


def test_the_lost_packet_is_a_reported_gap_and_marked_in_its_chunk(run):
    gaps = [e for e in run.statuses() if e.status and e.status.startswith("gap")]
    assert [(g.device.id, g.status) for g in gaps] == [
        ("ECGS-02", "gap: 20 samples (0.040 s) lost from sample 6000")]
    chunk = next(e for e in run.waveforms("ECGS-02/ecg") if e.seq == 12)
    assert Quality.MISSING in chunk.quality
    lead = np.asarray(chunk.waveform.samples[1])
    assert (lead[:20] == MISSING_SAMPLE).all() and (lead[20:] != MISSING_SAMPLE).all()
    others = [e for e in run.waveforms() if e.device.id != "ECGS-02" and Quality.MISSING in e.quality]
    assert others == []
    assert run.health["gaps"] == 1


def test_the_resent_packet_is_a_reported_overlap_and_dropped(run):
    overlaps = [e for e in run.statuses() if e.status and e.status.startswith("overlap")]
    assert [(o.device.id, o.status) for o in overlaps] == [
        ("ECGS-04", "overlap: 20 samples (0.040 s) from sample 7900 received again, dropped")]
    assert run.health["overlaps"] == 1


def test_latency_from_sample_time_to_sink_is_measured_for_every_chunk(run):
    stats = run.stats()
    chunks = [e for e in run.waveforms() if e.status != PARTIAL_STATUS]
    assert stats["chunks"] + len(run.first_chunk_latencies_s) == len(chunks)
    assert all(np.isfinite(run.latencies_s)) and min(run.latencies_s) > 0  # after the sample was taken
    assert len(run.first_chunk_latencies_s) == 10


def test_device_clock_offsets_are_aligned(run):
    min_correction = load_rules("rules").clocks.min_correction_s  # the hub treats smaller offsets as network delay
    # the chunk streams: one estimate per second of samples, so the minimum filter has converged
    # (a stream of one partial record has a single estimate, as late as that packet was)
    for event in [e for e in run.waveforms() if e.stream.endswith("/ecg")]:
        true_offset = run.true_offsets[event.device.id]
        expected = true_offset if abs(true_offset) >= min_correction else 0.0
        # corrected time = device time + estimated offset; the estimate is off by the smallest network delay only
        assert event.clock_offset == pytest.approx(expected, abs=0.25), event.device.id
        assert event.corrected_time == pytest.approx(event.device_time + event.clock_offset)


def test_asystole_sends_the_last_seconds_at_once_while_the_stream_continues(run):
    alarms = [e for _, e in run.arrivals if e.kind is EventKind.ALARM and e.device.id == "ECGS-06"]
    starts = [a for a in alarms if a.alarm.condition == ASYSTOLE and a.alarm.phase == "start"]
    ends = [a for a in alarms if a.alarm.condition == ASYSTOLE and a.alarm.phase == "end"]
    assert len(starts) == 1 and len(ends) == 1
    partials = run.waveforms("ECGS-06/ecg/partial")
    assert len(partials) == 1
    partial = partials[0]
    assert partial.status == PARTIAL_STATUS and partial.alarm.condition == ASYSTOLE
    wave = partial.waveform
    assert len(wave.samples[0]) == 10 * FS  # the last partial_record_s seconds, in one event
    stream = run.waveforms("ECGS-06/ecg")
    t0 = stream[0].waveform.start_time
    # the excerpt ends `pause_s` into the pause (when the rule fires), i.e. 23 s after the stream start
    assert wave.start_time + 10.0 - t0 == pytest.approx(PAUSE[0] + 3.0, abs=1.0)
    # the full record goes on: chunks after the alarm, in order, none of them replaced
    arrival = {id(e): at for at, e in run.arrivals}
    later = [e for e in stream if arrival[id(e)] > arrival[id(partial)]]
    assert len(later) >= 20
    # the partial record's samples are the stream's samples
    chunk = next(e for e in stream if abs(e.waveform.start_time - wave.start_time) < 1.0 and e.waveform.start_time
                 >= wave.start_time)
    shift = round((chunk.waveform.start_time - wave.start_time) * FS)
    assert tuple(wave.samples[1][shift:shift + 100]) == chunk.waveform.samples[1][:100]


def test_a_device_alarm_sends_a_partial_record(run):
    alarms = [e for _, e in run.arrivals if e.kind is EventKind.ALARM and e.device.id == "ECGS-08"]
    assert [a.alarm.condition for a in alarms if a.alarm.phase == "start"] == ["MDC_EVT_ECG_V_FIB"]
    partials = run.waveforms("ECGS-08/ecg/partial")
    assert len(partials) == 1 and partials[0].alarm.condition == "MDC_EVT_ECG_V_FIB"
    stream = run.waveforms("ECGS-08/ecg")
    t0 = stream[0].waveform.start_time
    wave = partials[0].waveform
    assert wave.start_time + len(wave.samples[0]) / FS - t0 == pytest.approx(DEVICE_ALARM_AT, abs=0.05)
    # no asystole on the healthy devices
    healthy = [e for _, e in run.arrivals if e.kind is EventKind.ALARM and e.device.id not in ("ECGS-06", "ECGS-08")]
    assert healthy == []


def test_r_waves_and_heart_rate_come_from_the_stream(run):
    rwaves = [e for _, e in run.arrivals if e.stream == "ECGS-00/ecg/rwave"]
    assert 60 <= len(rwaves) <= 90  # PTB s0010: about 80 beats/min
    rr = [e.value for e in rwaves if e.value is not None]
    assert np.median(rr) == pytest.approx(0.73, abs=0.05)
    seqs = [e.seq for e in rwaves]
    assert seqs == sorted(set(seqs))
    rates = [e for _, e in run.arrivals if e.stream == "ECGS-00/ecg/hr"]
    assert rates and all(e.metric == "heart-rate" and 65 <= e.value <= 100 for e in rates), [e.value for e in rates]


def test_strips_and_partial_records_are_valid_fhir_sampled_data(run):
    chunk = next(e for e in run.waveforms("ECGS-02/ecg") if e.seq == 12)  # the one with the gap
    partial = run.waveforms("ECGS-06/ecg/partial")[0]
    for event, is_partial in ((chunk, False), (partial, True)):
        strip = strip_from_waveform(event, partial=is_partial, alarm=event.alarm.text if event.alarm else None)
        obs = build_sampled_data_observation(strip)
        model = validate_observation(obs)
        assert len(model.component) == 12
        lead_ii = obs["component"][1]
        assert lead_ii["code"]["coding"][0]["code"] == "131330"
        sampled = lead_ii["valueSampledData"]
        assert sampled["period"] == 2 and sampled["dimensions"] == 1
        tokens = sampled["data"].split()
        assert len(tokens) == len(event.waveform.samples[1])
        assert obs["status"] == ("preliminary" if is_partial else "final")
    assert build_sampled_data_observation(strip_from_waveform(chunk))["component"][1]["valueSampledData"][
        "data"].split()[:20] == ["E"] * 20


def test_a_partial_record_is_an_ecgaware_partial_record_file(run, tmp_path):
    from connectors.ecg import read_ecg, write_ecg
    from connectors.ecg_stream.records import record_from_waveform

    partial = run.waveforms("ECGS-06/ecg/partial")[0]
    written = write_ecg(record_from_waveform(partial), tmp_path / "alarm.ecgaware.xml")
    back = read_ecg(written)
    assert back.session.partial is True and "asystole" in back.session.alarm
    assert back.patient.id == "PAT-ECG-06" and back.n_samples == 10 * FS and len(back.leads) == 12
    assert back.lead("II").digital.tolist() == list(partial.waveform.samples[1])
