from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest

from connectors.ecg.csv_format import read_csv, write_csv
from connectors.ecg.exceptions import EcgFormatError


def test_iso_timestamps_give_rate_and_start(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("timestamp,II [uV],V1 [uV]\n"
                    "2024-03-01T08:00:00.000,10,-5\n2024-03-01T08:00:00.004,12.5,-5\n2024-03-01T08:00:00.008,15,0\n")
    record = read_csv(path)
    assert record.sample_rate == 250
    assert record.start_time == datetime(2024, 3, 1, 8, 0, 0)
    assert record.lead_names == ["II", "V1"]
    np.testing.assert_allclose(record.lead("II").microvolts(), [10, 12.5, 15])
    assert record.lead("II").scale == pytest.approx(0.1)  # finest decimal step the file uses


def test_milliseconds_time_column(tmp_path):
    path = tmp_path / "b.csv"
    path.write_text("time_ms,I\n0,0.1\n2,0.2\n4,0.3\n")
    record = read_csv(path)
    assert record.sample_rate == 500 and record.start_time is None
    np.testing.assert_allclose(record.lead("I").microvolts(), [100, 200, 300])  # plain names are mV


def test_no_time_column_needs_a_rate(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("I,II\n0.1,0.2\n0.1,0.3\n")
    with pytest.raises(EcgFormatError, match="no time column"):
        read_csv(path)
    assert read_csv(path, sample_rate=360).sample_rate == 360


def test_bad_value_names_row_and_column(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("time_s,I,II\n0,1,2\n0.002,1,\n")
    with pytest.raises(EcgFormatError, match="row 3") as err:
        read_csv(path)
    assert err.value.field == "II"


def test_write_then_read_is_exact(record_factory, tmp_path):
    record = record_factory(n_leads=3, n=2000)
    back = read_csv(write_csv(record, tmp_path / "e.csv"))
    assert back.start_time == record.start_time and back.sample_rate == record.sample_rate
    for a, b in zip(record.leads, back.leads):
        np.testing.assert_allclose(a.microvolts(), b.microvolts(), atol=1e-9)
