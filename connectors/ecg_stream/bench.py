"""Streaming ECG latency, sample time -> sink, measured in real time through the hub.

    from connectors.ecg_stream.bench import measure_stream_latency
    measure_stream_latency()  # {"p50_s": ..., "p99_s": ..., "chunks": ..., ...}

Simulated devices stream real ECG (PTB s0010_re, 12 leads at 500 Hz) with network jitter
(and, with `lost_packet=`, one lost packet on the first device: its chunk, and the chunks
queued behind it, then wait the whole jitter buffer, which dominates p99 of a short run);
the connector's jitter buffer, chunking and the embedded runtime's stages 1 and 2 run as in
production; a recording sink notes the arrival of every chunk. Latency of a chunk = its
arrival at the sink - the true acquisition time of its newest sample (the device clock
offset is known to the simulator, so this is not the hub's own estimate). Each stream's first
chunk waits in stage 1's reorder window (the first event of a stream always does) and is
reported apart (`first_chunk_max_s`). `devsync bench ecg` reports p99_s as
ecg_stream_latency_p99_s; target: under 0.1 s plus the jitter buffer.
"""

from __future__ import annotations

import asyncio

from connectors.ecg_stream.harness import Scenario, run_stream_scenario


def measure_stream_latency(*, devices: int = 4, seconds: float = 15.0, sample_rate_hz: float = 500.0,
                           jitter_s: float = 0.05, jitter_buffer_s: float = 1.0, lost_packet: int | None = None,
                           rules_path: str = "rules") -> dict:
    """Run `devices` streams for `seconds` (real time) and return the latency figures (seconds)."""
    from hub.rules.load import load_rules

    scenario = Scenario(devices=devices, seconds=seconds, sample_rate_hz=sample_rate_hz, jitter_s=jitter_s,
                        jitter_buffer_s=jitter_buffer_s, lose={0: {lost_packet}} if lost_packet is not None else {},
                        clock_offsets_s=(0.0, -2.5, 1.25, 30.0))
    result = asyncio.run(run_stream_scenario(scenario, load_rules(rules_path)))
    stats = result.stats()
    stats.update(devices=devices, seconds=seconds, sample_rate_hz=sample_rate_hz, leads=len(scenario.leads),
                 jitter_s=jitter_s, jitter_buffer_s=jitter_buffer_s, gaps=result.health["gaps"],
                 target_p99_s=0.1 + jitter_buffer_s)
    return stats


if __name__ == "__main__":
    import json

    print(json.dumps(measure_stream_latency(), indent=2))
