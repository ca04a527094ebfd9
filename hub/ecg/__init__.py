"""ECG analysis building blocks (QRS detection, RR series, heart rate, scoring) and strip plots.

Pure functions over numpy arrays and `connectors.ecg.EcgRecord`; shared by the ECG file
commands, the ECG stream connector and the Holter analysis.
"""

from hub.ecg.analysis import (
    BEAT_SYMBOLS,
    QrsScore,
    detect_qrs,
    detect_record_qrs,
    heart_rate_series,
    pick_lead,
    rr_intervals,
    score_qrs,
)

__all__ = ["BEAT_SYMBOLS", "QrsScore", "detect_qrs", "detect_record_qrs", "heart_rate_series", "pick_lead", "rr_intervals", "score_qrs"]
