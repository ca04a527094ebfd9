"""Renderers: canonical events -> HL7 v2 (IHE PCD-01 ORU^R01, PCD-04 ORU^R40) and FHIR R4 JSON.

Pure and fast (string / dict building); hub.render.validate checks outputs with the libraries.
See docs/render.md.
"""

from __future__ import annotations

from hub.render.context import RenderContext
from hub.render.fhir import build_observation, build_transaction_bundle, dumps
from hub.render.hl7v2 import build_oru_r01
from hub.render.pcd04 import build_oru_r40
from hub.render.rates import measure_render_rates

__all__ = [
    "RenderContext",
    "build_observation",
    "build_oru_r01",
    "build_oru_r40",
    "build_transaction_bundle",
    "dumps",
    "measure_render_rates",
]
