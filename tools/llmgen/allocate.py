"""Split an environment's replica bounds for a model across its clusters.

Pure functions, no catalog types: the inputs are the environment's bounds,
the routing weights and each cluster's hourly price per replica. The result
preserves the totals exactly (largest-remainder rounding) and keeps each
cluster's minimum at or below its maximum.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def largest_remainder(total: int, weights: Mapping[str, float], order: Sequence[str]) -> dict[str, int]:
    """Integer shares of `total` proportional to `weights`, summing to `total`.

    Ties on the remainder go to the earlier cluster in `order`, so the split
    is deterministic.
    """
    if not order:
        return {}
    mass = sum(max(weights.get(c, 0.0), 0.0) for c in order)
    if mass <= 0:
        weights = {c: 1.0 for c in order}
        mass = float(len(order))
    exact = {c: total * max(weights.get(c, 0.0), 0.0) / mass for c in order}
    shares = {c: int(exact[c]) for c in order}
    left = total - sum(shares.values())
    by_remainder = sorted(order, key=lambda c: (-(exact[c] - shares[c]), order.index(c)))
    for c in by_remainder[:left]:
        shares[c] += 1
    return shares


def split_replicas(
    low: int,
    high: int,
    routing_weights: Mapping[str, int],
    clusters: Sequence[str],
    prices: Mapping[str, float],
) -> dict[str, tuple[int, int, list[str]]]:
    """Per-cluster (min, max, reasons) for an environment's `low`..`high` replicas."""
    order = list(clusters)
    weights = {c: float(routing_weights.get(c, 0)) for c in order}
    basis = "routing weights" if any(weights.values()) else "equal shares"
    highs = largest_remainder(high, weights, order)
    lows = largest_remainder(low, weights, order)
    # A cluster may not be asked to keep more replicas than it may run.
    overflow = 0
    for c in order:
        if lows[c] > highs[c]:
            overflow += lows[c] - highs[c]
            lows[c] = highs[c]
    for c in sorted(order, key=lambda c: highs[c] - lows[c], reverse=True):
        take = min(overflow, highs[c] - lows[c])
        lows[c] += take
        overflow -= take
    return {
        c: (
            lows[c],
            highs[c],
            [f"{basis}: min {lows[c]} of {low}, max {highs[c]} of {high}"],
        )
        for c in order
    }
