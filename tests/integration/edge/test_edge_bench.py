"""`devsync bench edge` writes the figures the issue names, in the shared result shape."""

from __future__ import annotations

import json

import pytest

from hub.cli import main


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_bench_edge_writes_its_figures(tmp_path, kafka_bootstrap, capsys):
    out = tmp_path / "edge.json"
    assert main(["bench", "edge", "--events", "3000", "--unbatched-events", "100", "--bootstrap", kafka_bootstrap, "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    figures = {f["name"]: f for f in result["figures"]}
    assert result["bench"] == "edge" and "machine" in result
    for name in ("edge_append_events_per_s", "edge_replay_events_per_s", "edge_bytes_per_event",
                 "edge_sizing_72h_30_beds_disk_bytes"):
        assert figures[name]["value"] > 0, name
    assert figures["edge_append_events_per_s"]["unit"] == "events/s"
    assert 600 < figures["edge_payload_bytes_per_event"]["value"] < figures["edge_bytes_per_event"]["value"]
    assert "edge_replay_events_per_s" in capsys.readouterr().out
