"""The `ecg:` rule section: streaming ECG, R-wave/alarm rules, the watch folder and the PACS.

    ecg:
      stream:  {jitter_buffer_s: 1.5, chunk_s: 1.0}
      rwave:   {lead: II, hr_every_s: 5}
      alarms:  {pause_s: 3.0, hr_low_bpm: 40, hr_high_bpm: 150, partial_record_s: 30}
      watch:   {settle_s: 2.0, device_id: ECGCART-1, error_dir: error}
      pacs:    {host: pacs.example.org, port: 104, called_aet: PACS, calling_aet: DEVSYNC}

Every number the ECG stream connector, the watch folder and the DICOM sink use lives here
with its default; docs/ecg-streaming.md and docs/ecg-pacs.md explain each one.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from hub.rules.base import RuleModel


class EcgStreamDevice(RuleModel):
    """One streaming ECG device the connector connects to (its `id` is an inventory device id)."""

    id: str = Field(description="Inventory device id (devices[].id); its location binds the stream to a patient.")
    host: str = Field(description="Device (or serial-to-LAN bridge) host.")
    port: int = Field(ge=1, le=65535, description="Device TCP port.")


class EcgStreamRules(RuleModel):
    """The streaming ECG connector: jitter buffer, chunking, gap/overlap and clock handling."""

    devices: list[EcgStreamDevice] = Field(default_factory=list, description="Streaming ECG devices to connect to.")

    jitter_buffer_s: float = Field(
        1.5, ge=0.05, le=10, description="How long samples wait at the connector so late packets can slot in (s); "
        "1-2 s absorbs network jitter; every sample is delayed by this much.")
    chunk_s: float = Field(1.0, gt=0, le=10, description="Length of one waveform event (s of samples, all leads).")
    gap_tolerance_samples: int = Field(
        0, ge=0, description="Missing samples tolerated between packets before a gap is reported.")
    clock_window_packets: int = Field(
        250, ge=1, description="Packets whose (arrival - device time) are kept; their minimum is the clock offset.")
    clock_step_s: float = Field(
        2.0, gt=0, description="A device time that disagrees with its sample count by more than this is a clock "
        "step: the mapping is re-based at once and reported (s).")
    release_tick_s: float = Field(0.02, gt=0, le=1, description="How often held slots are checked against the "
                                  "jitter-buffer deadline when no packet arrives (s).")
    max_packet_samples: int = Field(
        10_000, ge=1, description="Larger packets are refused as malformed (samples per lead).")
    reconnect_initial_s: float = Field(0.2, gt=0, description="First wait before reconnecting to a device (s).")
    reconnect_max_s: float = Field(10.0, gt=0, description="Longest wait between reconnect attempts (s).")


class EcgRwaveRules(RuleModel):
    """R-wave detection on the stream (XQRS on a sliding window of one lead)."""

    enabled: bool = Field(True, description="Detect R waves and emit R-wave and heart-rate events.")
    lead: str = Field("II", description="Lead to detect on (falls back to MLII, I, V5, ... when absent).")
    window_s: float = Field(8.0, ge=3, le=60, description="Samples the detector sees each time it runs (s).")
    detect_every_s: float = Field(2.0, gt=0, le=30, description="How often the detector runs (s); R-wave events "
                                  "and pause alarms come this much (plus 0.3 s) after the beat.")
    hr_every_s: float = Field(5.0, gt=0, description="Emit a heart-rate event this often (s).")
    detector_processes: int = Field(1, ge=0, le=16, description="Worker processes the detector runs in (XQRS is "
                                    "CPU-heavy Python: in-process it would hold the interpreter lock and delay the "
                                    "stream); 0 = a thread of the connector's process.")
    hr_beats: int = Field(8, ge=2, description="Beats averaged into one heart-rate value.")


class EcgAlarmRules(RuleModel):
    """Rule-based ECG alarms and the partial record they send ahead (ecgAware semantics)."""

    pause_s: float = Field(3.0, gt=0, description="No R wave for this long raises an asystole/pause alarm (s).")
    hr_low_bpm: float = Field(40.0, gt=0, description="Heart rate below this raises a bradycardia alarm (/min).")
    hr_high_bpm: float = Field(150.0, gt=0, description="Heart rate above this raises a tachycardia alarm (/min).")
    partial_record_s: float = Field(
        30.0, gt=0, le=600, description="Seconds before the alarm sent at once as a partial record.")
    retrigger_s: float = Field(30.0, ge=0, description="The same alarm condition sends no second partial record "
                               "within this long (s).")
    device_alarms: bool = Field(True, description="Device-sent alarms also trigger a partial record.")

    @model_validator(mode="after")
    def _low_below_high(self) -> EcgAlarmRules:
        if self.hr_low_bpm >= self.hr_high_bpm:
            raise ValueError(f"hr_low_bpm ({self.hr_low_bpm:g}) must be below hr_high_bpm ({self.hr_high_bpm:g})")
        return self


class EcgWatchRules(RuleModel):
    """The watch-folder import (`devsync ecg watch DIR`)."""

    settle_s: float = Field(2.0, ge=0, description="A file is taken only after its size and mtime stayed the same "
                            "this long (s); files being written are left alone.")
    poll_interval_s: float = Field(1.0, gt=0, description="How often the folder is scanned (s).")
    ignore_suffixes: list[str] = Field(
        default_factory=lambda: [".part", ".tmp", ".partial", ".crdownload", ".reason.txt"],
        description="Files ending in these are never taken (write them, then rename into place).")
    error_dir: str = Field("error", description="Failed files move here (relative to the watched folder) with "
                           "<name>.reason.txt next to them.")
    done_dir: str | None = Field("done", description="Imported files move here (relative to the folder); "
                                 "null = leave them (the journal still prevents a second import).")
    erase_on_success: bool = Field(False, description="Delete imported files instead of moving them to done_dir.")
    journal: str = Field(".devsync-ecg-journal.jsonl", description="Journal of processed files by content hash "
                         "(relative to the folder): a restart never imports a file twice.")
    device_id: str | None = Field(None, description="Device (inventory id) that drops files here; its location "
                                  "binding gives the patient when the file names none.")
    location: str | None = Field(None, description="Location to bind files to when no device is given.")
    require_binding: bool = Field(False, description="Refuse files whose patient is not bound by the association "
                                  "data (static bindings or the device's location).")
    max_file_bytes: int = Field(512 * 1024 * 1024, ge=1024, description="Larger files go to the error folder.")
    csv_sample_rate_hz: float | None = Field(None, gt=0, description="Sample rate for CSV files without a time "
                                             "column (None: such files go to the error folder).")


class PacsRules(RuleModel):
    """A DICOM Storage SCP (the PACS) that receives DICOM ECG by C-STORE."""

    host: str = Field(description="PACS host name or address.")
    port: int = Field(ge=1, le=65535, description="PACS DICOM port.")
    called_aet: str = Field("ANY-SCP", min_length=1, max_length=16, description="The PACS's AE title.")
    calling_aet: str = Field("DEVSYNC", min_length=1, max_length=16, description="Our AE title.")
    connect_timeout_s: float = Field(10.0, gt=0, description="Time allowed to open the association (s).")
    dimse_timeout_s: float = Field(30.0, gt=0, description="Time allowed for the C-STORE response (s).")
    retry_after_s: float = Field(5.0, gt=0, description="Suggested wait before retrying after a network error (s).")


class EcgRules(RuleModel):
    stream: EcgStreamRules = Field(default_factory=EcgStreamRules, description="Streaming ECG connector.")
    rwave: EcgRwaveRules = Field(default_factory=EcgRwaveRules, description="R-wave and heart-rate events.")
    alarms: EcgAlarmRules = Field(default_factory=EcgAlarmRules, description="Alarms and partial records.")
    watch: EcgWatchRules = Field(default_factory=EcgWatchRules, description="Watch-folder import.")
    pacs: PacsRules | None = Field(None, description="PACS for DICOM ECG (None = no PACS routing).")
    fhir_out: str | None = Field(None, description="Folder for FHIR SampledData Observations (NDJSON), or None.")
