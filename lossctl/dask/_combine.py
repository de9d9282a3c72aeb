"""Exact combination of the partial sums of pieces of one computation (row ranges, blocks).

Integer arithmetic on :class:`~lossctl.core.exactsum.ExactSum`, so the order of the pieces
does not change the finite results; callers still combine in input order, so that the
rounded fallback used when a loss is NaN or infinite is the same every run.
"""

from __future__ import annotations

from collections.abc import Sequence

from lossctl.core.exactsum import ZERO, ExactSum
from lossctl.core.merge import Partial


def add_exact(a: ExactSum | None, b: ExactSum | None) -> ExactSum | None:
    """``a + b``; ``None`` (a NaN or infinite sum) if either is ``None``."""
    return None if a is None or b is None else a + b


def combine_partials(partials: Sequence[Partial], source: str) -> Partial:
    """One :class:`Partial` from consecutive pieces of the same shard (same settings)."""
    exact_total: ExactSum | None = ZERO
    denominator = ZERO
    for partial in partials:
        exact_total = add_exact(exact_total, partial.exact_total)
        denominator = denominator + partial.exact_denominator
    total = sum(p.total for p in partials) if exact_total is None else exact_total.to_float()
    return Partial(
        source=source,
        settings=partials[0].settings,
        total=total,
        exact_total=exact_total,
        exact_denominator=denominator,
        count=sum(p.count for p in partials),
        ignored=sum(p.ignored for p in partials),
        fingerprints=partials[0].fingerprints,  # every piece is of the same files
    )
