"""Prometheus metrics of the streaming ECG connector (no patient or device labels)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PACKETS = Counter("devsync_ecg_stream_packets_total", "Sample packets received from streaming ECG devices.")
CHUNKS = Counter("devsync_ecg_stream_chunks_total", "Waveform chunks emitted, by completeness.", ["completeness"])
GAPS = Counter("devsync_ecg_stream_gaps_total", "Gaps (lost samples) detected in ECG streams.")
GAP_SECONDS = Counter("devsync_ecg_stream_gap_seconds_total", "Seconds of ECG lost in gaps.")
OVERLAPS = Counter("devsync_ecg_stream_overlaps_total", "Overlaps (samples received twice or after release), dropped.")
OVERLAP_SAMPLES = Counter("devsync_ecg_stream_overlap_samples_total", "Samples per lead dropped as overlaps.")
DECODE_ERRORS = Counter("devsync_ecg_stream_decode_errors_total", "Malformed frames (the connection is reset).")
RECONNECTS = Counter("devsync_ecg_stream_reconnects_total", "Connections re-opened to streaming ECG devices.")
RWAVES = Counter("devsync_ecg_stream_rwaves_total", "R waves detected on ECG streams.")
ALARMS = Counter("devsync_ecg_stream_alarms_total", "ECG alarms raised, by origin (rule or device).", ["origin"])
PARTIAL_RECORDS = Counter("devsync_ecg_stream_partial_records_total", "Partial records sent ahead on an alarm.")
HELD_SECONDS = Gauge("devsync_ecg_stream_jitter_held_seconds", "Seconds of samples held in the jitter buffers.")
CLOCK_OFFSET = Histogram("devsync_ecg_stream_clock_offset_seconds", "Estimated device clock offsets (absolute).",
                         buckets=(0.001, 0.01, 0.1, 0.5, 1, 5, 30, 300, 3600))
RELEASE_DELAY = Histogram("devsync_ecg_stream_release_delay_seconds",
                          "Time from a chunk's last sample (corrected) to its emission by the connector.",
                          buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 2, 3, 5, 10))
