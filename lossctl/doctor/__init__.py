"""The classic mistakes in what is passed to a loss, as data (codes and evidence).

Imports only :mod:`lossctl.core` and :mod:`lossctl.errors`; the messages are rendered by
:mod:`lossctl.render.messages`.
"""

from lossctl.doctor.diagnosis import diagnose
from lossctl.doctor.findings import (
    CODES,
    NEG_INF_CODES,
    Finding,
    FindingCode,
    NonfiniteReason,
    ReasonCode,
)
from lossctl.doctor.kind import double_softmax_floor, input_kind
from lossctl.doctor.nonfinite import nonfinite_reason

__all__ = [
    "CODES",
    "NEG_INF_CODES",
    "Finding",
    "FindingCode",
    "NonfiniteReason",
    "ReasonCode",
    "diagnose",
    "double_softmax_floor",
    "input_kind",
    "nonfinite_reason",
]
