from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from hub.holter.errors import HolterError
from hub.holter.inputs import check_file_format, open_checked, preflight, unpack_mit
from hub.holter.settings import HolterSettings

WFDB = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "wfdb"
EDF = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "edf" / "contec_ecg90a_0000050.edf"
S = HolterSettings()


def zip_of(path: Path, files: dict[str, bytes]) -> Path:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    path.write_bytes(buf.getvalue())
    return path


def code_of(fn, *args, **kw) -> str:
    with pytest.raises(HolterError) as e:
        fn(*args, **kw)
    return e.value.code


def test_unknown_format_names_the_supported_ones():
    with pytest.raises(HolterError) as e:
        check_file_format("aiecg")
    assert e.value.code == "unsupported_format" and "mit" in e.value.message


def test_mit_zip_opens_and_rate_is_checked(tmp_path):
    up = zip_of(tmp_path / "100.zip", {f"100.{x}": (WFDB / f"100.{x}").read_bytes() for x in ("hea", "dat")})
    rec = open_checked(up, "mit", tmp_path / "w", S, sampling_rate=360)
    assert rec.sample_rate == 360 and rec.n_samples == 650000 and rec.lead_names == ["MLII", "V5"]
    assert rec.read(1000, 1010).shape == (10, 2)
    assert code_of(preflight, up, "mit", tmp_path / "w2", S, sampling_rate=250) == "sampling_rate_mismatch"


def test_truncated_dat_is_reported(tmp_path):
    up = zip_of(tmp_path / "100.zip", {"100.hea": (WFDB / "100.hea").read_bytes(), "100.dat": (WFDB / "100.dat").read_bytes()[:100000]})
    assert code_of(preflight, up, "mit", tmp_path / "w", S, sampling_rate=360) == "truncated_file"


def test_unsafe_archive_paths_are_refused(tmp_path):
    up = zip_of(tmp_path / "x.zip", {"../evil.hea": b"x"})
    assert code_of(unpack_mit, up, tmp_path / "out", 10**6) == "unsupported_format"


def test_mit_that_is_not_an_archive(tmp_path):
    up = tmp_path / "x.zip"
    up.write_bytes(b"just text")
    assert code_of(preflight, up, "mit", tmp_path / "w", S, sampling_rate=None) == "unsupported_format"


def test_declared_format_must_match_content(tmp_path):
    csv = tmp_path / "a.csv"
    csv.write_text("time_s,II\n0,0.1\n0.004,0.2\n")
    assert code_of(preflight, csv, "edf", tmp_path / "w", S, sampling_rate=None) == "unsupported_format"


def test_truncated_edf_is_reported(tmp_path):
    cut = tmp_path / "cut.edf"
    cut.write_bytes(EDF.read_bytes()[:-5000])
    assert code_of(preflight, cut, "edf", tmp_path / "w", S, sampling_rate=None) == "truncated_file"
    whole = tmp_path / "whole.edf"
    shutil.copy(EDF, whole)
    rec = open_checked(whole, "edf", tmp_path / "w2", S, sampling_rate=800)
    assert rec.sample_rate == 800 and rec.read(0, 800).shape[0] == 800


def test_csv_iso_and_seconds_and_truncation(tmp_path):
    t = np.arange(2000) / 250.0
    rows = "\n".join(f"2024-01-02T03:04:{5 + x:09.6f},{np.sin(x):.4f},{np.cos(x):.4f}" for x in t)
    iso = tmp_path / "iso.csv"
    iso.write_text("timestamp,I [mV],II [uV]\n" + rows + "\n")
    rec = open_checked(iso, "csv", tmp_path / "w", S, sampling_rate=250)
    assert rec.sample_rate == 250 and rec.n_samples == 2000 and rec.lead_names == ["I", "II"]
    got = rec.read(0, 3)
    assert got[1, 0] == pytest.approx(np.sin(t[1]), abs=1e-4) and got[1, 1] == pytest.approx(np.cos(t[1]) / 1000, abs=1e-6)
    assert rec.start_time.isoformat() == "2024-01-02T03:04:05"
    secs = tmp_path / "s.csv"
    secs.write_text("time_s,II\n" + "\n".join(f"{x:.3f},{np.sin(x):.3f}" for x in t) + "\n")
    assert open_checked(secs, "csv", tmp_path / "w2", S, sampling_rate=None).sample_rate == 250
    assert code_of(preflight, secs, "csv", tmp_path / "w3", S, sampling_rate=500) == "sampling_rate_mismatch"
    cut = tmp_path / "cut.csv"
    cut.write_text(secs.read_text()[:-9])
    text = cut.read_text()
    cut.write_text(text[: text.rfind(",")])  # last row lost its lead value
    assert code_of(preflight, cut, "csv", tmp_path / "w4", S, sampling_rate=None) == "truncated_file"
