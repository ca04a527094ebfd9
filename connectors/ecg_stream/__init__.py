"""Streaming ECG ("synchronous download"): a device simulator, the connector, R waves, alarms.

    connector = EcgStreamConnector(rules)           # devices from rules.ecg.stream.devices
    await connector.start(runtime.emit)

Modules: protocol (wire frames), source (real ECG as a looping signal), simulator (the device),
jitter (jitter buffer: ordered chunks, gaps, overlaps), device (one stream's state: clock
alignment, events), events (canonical event builders), rwave (R waves, heart rate), alarms
(asystole/pause, HR limits, partial records), connector (TCP I/O), harness and bench (latency
through the hub). See README.md and docs/ecg-streaming.md.
"""

from connectors.ecg_stream.connector import EcgStreamConnector

__all__ = ["EcgStreamConnector"]
