"""Split each environment's replica bounds for a model across its clusters.

Pure functions over plain data (no catalog types), so the allocator can be
tested by itself. The inputs are, per model, the environment's bounds and the
clusters ("sites") it may run on, each with a routing weight, an hourly price
per replica and the node pool it would use; per pool, how many nodes it may
have. The decisions, in order:

1. Budget: the environment's maximum replicas are capped with
   `cost.budget_caps`, the same caps `llmgen validate` announces, priced at
   each model's dearest site, so whatever the split the worst case stays
   within budget (when the minimums fit at all).
2. Floors: a model that may not scale to zero keeps one replica on every
   site it is placed on, so its minimum is at least its number of sites.
3. Shares: floors first, then the rest of each bound in proportion to the
   routing weights (equal shares without weights), largest-remainder rounded
   so the totals are preserved exactly.
4. Capacity: a pool's nodes are shared by the models placed on it. Every
   model's minimums are placed before any model's headroom (in the
   environment's listing order); what does not fit moves to the model's
   cheapest other site with room, and only what fits nowhere is dropped.

Every decision that changes a number leaves a reason that `llmgen plan` shows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from llmgen.catalog.cost import CostLine, budget_caps, effective_min


def largest_remainder(
    total: int, weights: Mapping[str, float], order: Sequence[str]
) -> dict[str, int]:
    """Integer shares of `total` proportional to `weights`, summing to `total`.

    Ties on the remainder go to the earlier name in `order`, so the split is
    deterministic; without any positive weight the shares are equal.
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


@dataclass(frozen=True)
class Site:
    """One cluster a model may run on."""

    cluster: str
    weight: float
    replica_hourly_usd: float
    #: a key naming the node pool, unique across clusters (e.g. "cluster/pool")
    pool: str
    #: how many replicas of this model one node of the pool holds
    replicas_per_node: int


@dataclass(frozen=True)
class Demand:
    """One model of an environment: its bounds and where it may run."""

    model: str
    low: int
    high: int
    sites: tuple[Site, ...]
    scale_to_zero: bool = True


@dataclass(frozen=True)
class Share:
    """A model's bounds on one cluster, and why they are what they are."""

    min_replicas: int
    max_replicas: int
    reasons: tuple[str, ...]


@dataclass
class Allocation:
    """The allocator's answer for one environment."""

    #: (model, cluster) -> share; every site of every demand has an entry
    shares: dict[tuple[str, str], Share] = field(default_factory=dict)
    #: pool -> nodes the pool needs with every model at its maximum
    nodes_at_max: dict[str, int] = field(default_factory=dict)
    #: model -> its environment-wide maximum after the budget cap
    capped_high: dict[str, int] = field(default_factory=dict)
    #: environment-level notes (budget), shown once by `llmgen plan`
    notes: list[str] = field(default_factory=list)


class _Pools:
    """Node accounting: a pool's nodes are shared, a model's replicas pack per node."""

    def __init__(self, nodes: Mapping[str, int]) -> None:
        self.limit = dict(nodes)
        # pool -> model -> (replicas, replicas per node)
        self.placed: dict[str, dict[str, tuple[int, int]]] = {}

    def used(self, pool: str) -> int:
        return sum(math.ceil(r / k) for r, k in self.placed.get(pool, {}).values())

    def room(self, pool: str, model: str, per_node: int) -> int:
        """How many more replicas of `model` fit in `pool`."""
        if per_node <= 0:
            return 0
        have, _ = self.placed.get(pool, {}).get(model, (0, per_node))
        free_nodes = self.limit.get(pool, 0) - self.used(pool)
        # Free slots on the model's own last, partly filled node, plus whole free nodes.
        partial = (-have) % per_node
        return max(partial + max(free_nodes, 0) * per_node, 0)

    def add(self, pool: str, model: str, per_node: int, replicas: int) -> None:
        have, _ = self.placed.setdefault(pool, {}).get(model, (0, per_node))
        self.placed[pool][model] = (have + replicas, per_node)


def _seated(total: int, sites: Sequence[Site], floor: int) -> dict[str, int]:
    """`total` spread over `sites`: `floor` each first (if it fits), the rest by weight."""
    order = [s.cluster for s in sites]
    weights = {s.cluster: s.weight for s in sites}
    seats = floor if total >= floor * len(order) else 0
    rest = largest_remainder(total - seats * len(order), weights, order)
    return {c: seats + rest[c] for c in order}


def _place(
    pools: _Pools,
    demand: Demand,
    wanted: Mapping[str, int],
    notes: dict[str, list[str]],
    what: str,
) -> dict[str, int]:
    """Place `wanted[cluster]` more replicas per site; move what does not fit.

    Overflow goes to the model's cheapest other site with room (then by
    weight, then name); what fits nowhere is dropped, with a reason.
    """
    by_cluster = {s.cluster: s for s in demand.sites}
    placed: dict[str, int] = {}
    overflow = 0
    for s in demand.sites:
        want = wanted.get(s.cluster, 0)
        fit = min(want, pools.room(s.pool, demand.model, s.replicas_per_node))
        pools.add(s.pool, demand.model, s.replicas_per_node, fit)
        placed[s.cluster] = fit
        if fit < want:
            overflow += want - fit
            notes[s.cluster].append(f"capacity: pool {s.pool} holds {fit} of {want} {what}")
    cheapest = sorted(demand.sites, key=lambda s: (s.replica_hourly_usd, -s.weight, s.cluster))
    for s in cheapest:
        if overflow == 0:
            break
        take = min(overflow, pools.room(s.pool, demand.model, s.replicas_per_node))
        if take > 0:
            pools.add(s.pool, demand.model, s.replicas_per_node, take)
            placed[s.cluster] += take
            overflow -= take
            notes[s.cluster].append(
                f"capacity: took {take} {what} that did not fit elsewhere "
                f"(${by_cluster[s.cluster].replica_hourly_usd:.2f}/h per replica)"
            )
    if overflow:
        for s in demand.sites:
            notes[s.cluster].append(
                f"capacity: {overflow} {what} fit on no cluster and were dropped"
            )
    return placed


def allocate(
    demands: Sequence[Demand],
    pool_nodes: Mapping[str, int],
    monthly_budget_usd: float | None,
) -> Allocation:
    """Split every demand's bounds across its sites within budget and capacity.

    Promises, for every demand: each site's min <= max; the maxima never
    exceed the (budget-capped) maximum and the minima never exceed the
    minimum raised to the floors; with room enough in the pools both totals
    are met exactly; no pool is ever asked for more nodes than it may have;
    and when the minimums fit the budget, the maxima cost no more than it.
    """
    result = Allocation()
    live = [d for d in demands if d.sites]
    # Floors raise the minimum a model costs, so they count before the budget.
    lows = {d.model: _low_with_floor(d) for d in live}
    lines = [
        CostLine(
            d.model,
            lows[d.model],
            max(d.high, lows[d.model]),
            max(s.replica_hourly_usd for s in d.sites),
        )
        for d in live
    ]
    caps = (
        budget_caps(lines, monthly_budget_usd)
        if monthly_budget_usd is not None
        else {line.model: line.max_replicas for line in lines}
    )
    notes: dict[str, dict[str, list[str]]] = {
        d.model: {s.cluster: [] for s in d.sites} for d in live
    }
    for d in live:
        high = caps[d.model]
        result.capped_high[d.model] = high
        basis = "routing weights" if any(s.weight > 0 for s in d.sites) else "equal shares"
        for s in d.sites:
            notes[d.model][s.cluster].append(f"split by {basis}")
            if lows[d.model] > d.low:
                notes[d.model][s.cluster].append(
                    f"min raised {d.low}→{lows[d.model]}: the model may not scale to zero, "
                    "so every cluster keeps a replica"
                )
            if high < d.high:
                notes[d.model][s.cluster].append(f"budget: environment max capped {d.high}→{high}")
    if any(caps[d.model] < max(d.high, lows[d.model]) for d in live):
        result.notes.append("budget: maximum replicas capped to keep the worst case within budget")

    pools = _Pools(pool_nodes)
    # Pass 1: every model's minimums, so no model's headroom starves another's floor.
    placed_low: dict[str, dict[str, int]] = {}
    for d in live:
        floor = 0 if d.scale_to_zero else 1
        wanted = _seated(lows[d.model], d.sites, floor)
        placed_low[d.model] = _place(pools, d, wanted, notes[d.model], "min replicas")
    # Pass 2: headroom up to the capped maximum, aiming at each site's weighted share.
    for d in live:
        low = placed_low[d.model]
        floor = 0 if d.scale_to_zero else 1
        ideal = _seated(caps[d.model], d.sites, floor)
        growth = {c: max(ideal[c] - low[c], 0) for c in ideal}
        remaining = max(caps[d.model] - sum(low.values()), 0)
        if sum(growth.values()) > remaining:
            order = [s.cluster for s in d.sites]
            growth = _bounded_shares(remaining, growth, order)
        else:
            # Minimums that moved to other sites free headroom; give it to the weights.
            extra = remaining - sum(growth.values())
            more = largest_remainder(
                extra, {s.cluster: s.weight for s in d.sites}, [s.cluster for s in d.sites]
            )
            growth = {c: growth[c] + more[c] for c in growth}
        grown = _place(pools, d, growth, notes[d.model], "max replicas")
        for s in d.sites:
            lo, hi = low[s.cluster], low[s.cluster] + grown[s.cluster]
            reasons = [f"min {lo} of {lows[d.model]}, max {hi} of {caps[d.model]}"]
            reasons += _dedupe(notes[d.model][s.cluster])
            result.shares[(d.model, s.cluster)] = Share(lo, hi, tuple(reasons))
    for pool in pool_nodes:
        result.nodes_at_max[pool] = pools.used(pool)
    return result


def _low_with_floor(d: Demand) -> int:
    return effective_min(d.low, d.high, len(d.sites), d.scale_to_zero)


def _bounded_shares(total: int, caps: Mapping[str, int], order: Sequence[str]) -> dict[str, int]:
    """`total` split in proportion to `caps`, never giving a name more than its cap."""
    shares = largest_remainder(total, {c: float(caps[c]) for c in order}, order)
    spill = 0
    for c in order:
        if shares[c] > caps[c]:
            spill += shares[c] - caps[c]
            shares[c] = caps[c]
    for c in order:
        take = min(spill, caps[c] - shares[c])
        shares[c] += take
        spill -= take
    return shares


def _dedupe(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))
