"""The whole flow over HTTP against a real `devsync holter serve` process:
upload-url -> PUT -> submit -> poll status -> result -> report (PDF rendered with pdftoppm) ->
signed webhook received and verified; plus physician review."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.holter.holter_service import API, REPO, WFDB, mit_zip
from tests.integration.holter.receiver import WebhookReceiver


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("holter-reports")


@pytest.fixture(scope="module")
def receiver(holter_key):
    r = WebhookReceiver(holter_key[1], fail_first=1)  # the first delivery fails: the service must retry
    yield r
    r.close()


@pytest.fixture(scope="module")
def completed(client, receiver):
    task_id = client.upload("100.zip", mit_zip(), "mit")
    assert client.status(task_id)["status"] == "pending"
    r = client.submit(task_id, sampling_rate=360, priority="high", callback_url=receiver.url,
                      patient_info={"age": 69, "sex": "M"}, analysis_options={"hrv_analysis": True})
    assert r.status_code == 202, r.text
    assert r.json()["queue_position"] >= 1
    final = client.wait_for(task_id, {"completed"})
    return task_id, final


def test_status_shows_every_stage_done(completed):
    _, final = completed
    assert final["progress"]["uploading"] == 100 and final["progress"]["preprocessing"] == 100 and final["progress"]["ai_analyzing"] == 100
    assert final["error"] is None


def test_result_figures(client, completed):
    task_id, _ = completed
    res = client.http.get(f"{API}/result/{task_id}").json()
    assert res["heart_rate"]["total_beats"] == 2273  # = the reference annotation count of record 100
    assert 74 < res["heart_rate"]["mean_bpm"] < 77
    assert res["summary"]["analysable_duration_s"] == pytest.approx(1805.56, abs=0.1)
    assert res["pauses"]["count"] == 0 and res["atrial_fibrillation"]["episodes"] == 0
    assert res["ectopy"]["analysed"] is False and "classifier" in res["ectopy"]["reason"]
    assert res["hrv"]["time_domain"]["sdnn_ms"] > 0 and res["hrv"]["frequency_domain"]["lf_hf_ratio"] > 0
    assert len(res["strips"]) == 3
    png = client.http.get(res["strips"][0]["image_url"])
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert client.http.get(res["heart_rate"]["trend_image_url"]).status_code == 200


@pytest.mark.parametrize("template", ["standard", "summary", "detailed"])
def test_pdf_report_renders(client, completed, template, artefacts):
    task_id, _ = completed
    r = client.http.get(f"{API}/report/{task_id}", params={"format": "pdf", "template": template})
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf" and r.content[:5] == b"%PDF-"
    pdf = artefacts / f"report-{template}.pdf"
    pdf.write_bytes(r.content)
    if not shutil.which("pdftoppm"):
        subprocess.run(["bash", str(REPO / "scripts" / "install-test-peers.sh")], check=True, timeout=600)
    subprocess.run(["pdftoppm", "-png", "-r", "50", "-f", "1", "-l", "1", "-singlefile", str(pdf), str(artefacts / f"report-{template}")],
                   check=True, timeout=60)
    page = artefacts / f"report-{template}.png"
    assert page.stat().st_size > 10_000  # a page with text and a plot, not a blank sheet
    pages = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    count = int(next(line.split()[-1] for line in pages.splitlines() if line.startswith("Pages:")))
    assert count == {"summary": 1, "standard": 2, "detailed": 3}[template]


def test_html_report(client, completed):
    task_id, _ = completed
    r = client.http.get(f"{API}/report/{task_id}", params={"format": "html", "template": "detailed"})
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert "Heart-rate trend" in r.text and r.text.count("data:image/png;base64,") == 4 and "Hour 1" in r.text


def test_webhook_signed_retried_and_recorded(client, completed, receiver):
    task_id, _ = completed
    got = receiver.wait_for(2)
    assert [g["status"] for g in got[:2]] == [503, 200]  # first refused by the receiver, then retried
    assert all(g["verified"] for g in got)  # signature over timestamp + "." + body checks out
    payload = got[1]["payload"]
    assert payload["event"] == "analysis.completed" and payload["task_id"] == task_id and payload["summary"]["total_beats"] == 2273
    assert got[1]["headers"]["X-Holter-Signature"].startswith("sha256=")
    deliveries = client.status(task_id)["webhooks"]
    assert deliveries[0]["status"] == "delivered" and [a["status_code"] for a in deliveries[0]["attempts"]] == [503, 200]


def test_doctor_review_holds_then_amends(client, receiver):
    task_id = client.upload("100.zip", mit_zip(with_atr=False), "mit")
    assert client.submit(task_id, sampling_rate=360, callback_url=receiver.url,
                         analysis_options={"doctor_review": True}).status_code == 202
    st = client.wait_for(task_id, {"doctor_reviewing"})
    assert st["progress"]["doctor_reviewing"] == 0
    prelim = client.http.get(f"{API}/result/{task_id}").json()
    assert prelim["reviewer"]["status"] == "pending"
    before = len(receiver.received)
    r = client.http.post(f"{API}/review/{task_id}", json={"reviewer": "Dr. Test", "action": "amend", "conclusion": "Sinus rhythm."})
    assert r.status_code == 200 and r.json()["status"] == "completed"
    final = client.http.get(f"{API}/result/{task_id}").json()
    assert final["reviewer"]["conclusion"] == "Sinus rhythm." and final["reviewer"]["amended"] is True
    hook = receiver.wait_for(before + 1)[-1]
    assert hook["verified"] and hook["payload"]["summary"]["conclusion"] == "Sinus rhythm."
    again = client.http.post(f"{API}/review/{task_id}", json={"reviewer": "Dr. Test", "action": "confirm"})
    assert again.status_code == 409 and again.json()["code"] == "wrong_state"


def test_failed_job_reports_code_and_sends_signed_webhook(client, receiver):
    """A CSV whose head and tail are fine passes submit; the worker meets a bad row and fails the job."""
    rows = [f"{i / 250:.3f},{(i % 50) / 100:.2f}" for i in range(5000)]
    rows[2500] = "10.000,abc"
    data = ("time_s,II\n" + "\n".join(rows) + "\n").encode()
    task_id = client.upload("bad.csv", data, "csv")
    before = len(receiver.received)
    assert client.submit(task_id, sampling_rate=250, callback_url=receiver.url).status_code == 202
    st = client.wait_for(task_id, {"failed"})
    assert st["error"]["code"] == "unsupported_format" and "row 2502" in st["error"]["message"]
    hook = receiver.wait_for(before + 1)[-1]
    assert hook["verified"] and hook["payload"]["event"] == "analysis.failed"
    assert hook["payload"]["error"]["code"] == "unsupported_format"


@pytest.mark.parametrize("path,fmt,rate,leads", [
    ("edf/contec_ecg90a_0000050.edf", "edf", 800, 12),  # real Contec 12-lead EDF, 47 s
    ("csv/ecg_plot_12lead_500hz.csv", "csv", 500, 12),  # real 12-lead CSV without a time column, 10 s
])
def test_other_formats_run_end_to_end(client, path, fmt, rate, leads):
    data = (WFDB.parent / path).read_bytes()
    task_id = client.upload(Path(path).name, data, fmt)
    assert client.submit(task_id, sampling_rate=rate).status_code == 202
    client.wait_for(task_id, {"completed"})
    res = client.http.get(f"{API}/result/{task_id}").json()
    assert res["summary"]["format"] == fmt and res["summary"]["sampling_rate"] == rate and len(res["summary"]["leads"]) == leads
    assert res["heart_rate"]["total_beats"] > 5
    pdf = client.http.get(f"{API}/report/{task_id}", params={"template": "detailed"})
    assert pdf.status_code == 200 and pdf.content[:5] == b"%PDF-"  # short records: figures that need more data are n/a
