"""Split each environment's replica bounds for a model across its clusters.

Pure functions over plain data (no catalog types), so the allocator can be
tested by itself. The inputs are, per model, the environment's bounds and the
clusters ("sites") it may run on, each with a routing weight, an hourly price
per replica and the node pool it would use; per pool, how many nodes it may
have, how many it always keeps (`minNodes`) and what a node costs. The
decisions, in order:

1. Floors: a model that may not scale to zero keeps one replica on every
   site it is placed on; a model with a canary keeps a stable and a canary
   replica there (two), so its minimum is at least its sites times that.
2. Minimums: every model's minimum is placed before any model's headroom
   (in the environment's listing order); what does not fit moves to the
   model's cheapest other site with room. What fits nowhere is reported
   (`Allocation.unplaced_min`): plan turns it into an error.
3. Budget: the nodes pools keep idle (`minNodes` beyond what the minimums
   use) are paid whatever runs, so they come off the budget first; the
   maxima are then capped with `cost.budget_caps`, priced at each model's
   dearest site, so whatever the split the worst case stays within budget.
4. Shares: each bound is split by the routing weights (equal shares without
   weights), largest remainder first, then sites below their floor take
   from the sites furthest above theirs (70/30 of 4 is 3/1).
5. Headroom: placed like the minimums; what fits nowhere is reported
   (`Allocation.unplaced_max`): plan turns it into a warning.

Every decision that changes a number leaves a reason that `llmgen plan` shows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from llmgen.catalog.cost import HOURS_PER_MONTH, CostLine, budget_caps


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


def with_floor(
    total: int, weights: Mapping[str, float], order: Sequence[str], floor: int
) -> dict[str, int]:
    """`largest_remainder`, then every name below `floor` raised, as far as the total allows.

    A raised name takes one at a time from the name furthest above the
    floor (ties to the earlier name), so the split stays as close to the
    weights as the floor lets it: 70/30 of 4 with a floor of 1 is 3/1. A
    total too small for the floor everywhere gets the highest floor it can
    give every name (2 over two names with a floor of 2 is 1/1).
    """
    shares = largest_remainder(total, weights, order)
    floor = min(floor, total // len(order)) if order else 0
    if floor <= 0:
        return shares
    for c in order:
        while shares[c] < floor:
            donor = max(order, key=lambda d: (shares[d] - floor, -order.index(d)))
            shares[donor] -= 1
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
    #: nodes one replica takes (a multi-node group; then replicas_per_node is 1)
    nodes_per_replica: int = 1


@dataclass(frozen=True)
class Demand:
    """One model of an environment: its bounds and where it may run."""

    model: str
    low: int
    high: int
    sites: tuple[Site, ...]
    scale_to_zero: bool = True
    #: percent of traffic to the model's canary; 0 without one
    canary_weight: int = 0

    @property
    def site_floor(self) -> int:
        """Replicas every site keeps at the minimum (stable, plus a canary's)."""
        keeps = not self.scale_to_zero or (self.canary_weight > 0 and self.low > 0)
        return (2 if self.canary_weight > 0 else 1) if keeps else 0

    @property
    def site_floor_max(self) -> int:
        """Replicas every site needs at the maximum: a canary needs one beside the stable."""
        return 2 if self.canary_weight > 0 else (0 if self.scale_to_zero else 1)

    @property
    def effective_low(self) -> int:
        """The environment-wide minimum that will really run (floors in, never above max)."""
        return min(max(self.low, self.site_floor * len(self.sites)), max(self.high, self.low))


@dataclass(frozen=True)
class PoolSpec:
    """A node pool's limits and price."""

    max_nodes: int
    min_nodes: int = 0
    #: hourly USD of one node (its dearest shape)
    node_hourly_usd: float = 0.0


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
    #: pool -> nodes it may have (maxNodes)
    pool_limits: dict[str, int] = field(default_factory=dict)
    #: model -> its environment-wide maximum after the budget cap
    capped_high: dict[str, int] = field(default_factory=dict)
    #: model -> its environment-wide minimum with the floors (what should run)
    effective_low: dict[str, int] = field(default_factory=dict)
    #: model -> minimum replicas that fit in no pool of any of its sites
    unplaced_min: dict[str, int] = field(default_factory=dict)
    #: model -> replicas of its (capped) maximum that fit in no pool
    unplaced_max: dict[str, int] = field(default_factory=dict)
    #: models with no site at all
    homeless: list[str] = field(default_factory=list)
    #: pool -> nodes it keeps (minNodes) that the minimums leave idle
    idle_nodes: dict[str, int] = field(default_factory=dict)
    #: pool -> monthly USD of those idle nodes (paid whatever runs)
    idle_monthly_by_pool: dict[str, float] = field(default_factory=dict)
    #: the budget left for replicas once idle nodes are paid (None: no budget)
    replica_budget_usd: float | None = None
    #: environment-level notes (budget), shown once by `llmgen plan`
    notes: list[str] = field(default_factory=list)

    @property
    def idle_monthly_usd(self) -> float:
        return sum(self.idle_monthly_by_pool.values())

    def cost_lines(self, demands: Sequence[Demand]) -> list[CostLine]:
        """The budget's inputs: per model, floors in, at its dearest site."""
        return [
            CostLine(
                d.model,
                self.effective_low[d.model],
                max(d.high, self.effective_low[d.model]),
                max(s.replica_hourly_usd for s in d.sites),
            )
            for d in demands
            if d.sites
        ]


class _Pools:
    """Node accounting: a pool's nodes are shared, a model's replicas pack per node."""

    def __init__(self, nodes: Mapping[str, int]) -> None:
        self.limit = dict(nodes)
        # pool -> model -> (replicas, replicas per node, nodes per replica)
        self.placed: dict[str, dict[str, tuple[int, int, int]]] = {}
        # pool -> nodes its placed models use (kept as they are added: summing
        # every model of a pool on each question is quadratic in models)
        self.nodes: dict[str, int] = {}

    def used(self, pool: str) -> int:
        return self.nodes.get(pool, 0)

    def room(self, pool: str, model: str, per_node: int, nodes: int = 1) -> int:
        """How many more replicas of `model` fit in `pool`.

        A multi-node replica (`nodes` > 1, one replica per node group) needs
        `nodes` whole free nodes.
        """
        if per_node <= 0:
            return 0
        have = self.placed.get(pool, {}).get(model, (0, per_node, nodes))[0]
        free_nodes = max(self.limit.get(pool, 0) - self.used(pool), 0)
        if nodes > 1:
            return free_nodes // nodes
        # Free slots on the model's own last, partly filled node, plus whole free nodes.
        partial = (-have) % per_node
        return max(partial + free_nodes * per_node, 0)

    def add(self, pool: str, model: str, per_node: int, replicas: int, nodes: int = 1) -> None:
        have, k, n = self.placed.setdefault(pool, {}).get(model, (0, per_node, nodes))
        self.placed[pool][model] = (have + replicas, per_node, nodes)
        self.nodes[pool] = (
            self.nodes.get(pool, 0)
            - _nodes(have, k) * n
            + _nodes(have + replicas, per_node) * nodes
        )


def _nodes(replicas: int, per_node: int) -> int:
    return math.ceil(replicas / per_node) if replicas else 0


def _seated(total: int, sites: Sequence[Site], floor: int) -> dict[str, int]:
    """`total` spread over `sites` by weight, each raised to `floor` (if the total allows)."""
    return with_floor(
        total, {s.cluster: s.weight for s in sites}, [s.cluster for s in sites], floor
    )


def _place(
    pools: _Pools,
    demand: Demand,
    wanted: Mapping[str, int],
    notes: dict[str, list[str]],
    what: str,
) -> tuple[dict[str, int], int]:
    """Place `wanted[cluster]` more replicas per site; move what does not fit.

    Overflow goes to the model's cheapest other site with room (then by
    weight, then name). Returns what each site got and what fit nowhere.
    """
    by_cluster = {s.cluster: s for s in demand.sites}
    placed: dict[str, int] = {}
    overflow = 0
    for s in demand.sites:
        want = wanted.get(s.cluster, 0)
        fit = min(want, pools.room(s.pool, demand.model, s.replicas_per_node, s.nodes_per_replica))
        pools.add(s.pool, demand.model, s.replicas_per_node, fit, s.nodes_per_replica)
        placed[s.cluster] = fit
        if fit < want:
            overflow += want - fit
            notes[s.cluster].append(f"capacity: pool {s.pool} holds {fit} of {want} {what}")
    cheapest = sorted(demand.sites, key=lambda s: (s.replica_hourly_usd, -s.weight, s.cluster))
    for s in cheapest:
        if overflow == 0:
            break
        take = min(
            overflow, pools.room(s.pool, demand.model, s.replicas_per_node, s.nodes_per_replica)
        )
        if take > 0:
            pools.add(s.pool, demand.model, s.replicas_per_node, take, s.nodes_per_replica)
            placed[s.cluster] += take
            overflow -= take
            notes[s.cluster].append(
                f"capacity: took {take} {what} that did not fit elsewhere "
                f"(${by_cluster[s.cluster].replica_hourly_usd:.2f}/h per replica)"
            )
    if overflow:
        for s in demand.sites:
            notes[s.cluster].append(f"capacity: {overflow} {what} fit in no pool")
    return placed, overflow


def allocate(
    demands: Sequence[Demand],
    pools: Mapping[str, int | PoolSpec],
    monthly_budget_usd: float | None,
) -> Allocation:
    """Split every demand's bounds across its sites within budget and capacity.

    Promises, for every demand: each site's min <= max; the maxima never
    exceed the (budget-capped) maximum and the minima never exceed the
    minimum raised to the floors; with room enough in the pools both totals
    are met exactly, and whatever is not met is reported (`unplaced_min`,
    `unplaced_max`); no pool is ever asked for more nodes than it may have;
    and when the minimums and idle nodes fit the budget, the maxima and idle
    nodes cost no more than it.
    """
    specs = {k: v if isinstance(v, PoolSpec) else PoolSpec(v) for k, v in pools.items()}
    result = Allocation()
    result.homeless = [d.model for d in demands if not d.sites]
    live = [d for d in demands if d.sites]
    lows = {d.model: d.effective_low for d in live}
    result.effective_low = dict(lows)
    notes: dict[str, dict[str, list[str]]] = {
        d.model: {s.cluster: [] for s in d.sites} for d in live
    }
    for d in live:
        basis = "routing weights" if any(s.weight > 0 for s in d.sites) else "equal shares"
        for s in d.sites:
            notes[d.model][s.cluster].append(f"split by {basis}")
            if lows[d.model] > d.low:
                why = (
                    "a stable and a canary replica on every cluster"
                    if d.canary_weight
                    else "a replica on every cluster: the model may not scale to zero"
                )
                notes[d.model][s.cluster].append(f"min raised {d.low}→{lows[d.model]}: {why}")

    placer = _Pools({k: v.max_nodes for k, v in specs.items()})
    # Pass 1: every model's minimums, so no model's headroom starves another's floor.
    placed_low: dict[str, dict[str, int]] = {}
    for d in live:
        wanted = _seated(lows[d.model], d.sites, d.site_floor)
        placed_low[d.model], missing = _place(placer, d, wanted, notes[d.model], "min replicas")
        if missing:
            result.unplaced_min[d.model] = missing

    # Idle nodes: what pools keep beyond what the minimums use is paid regardless.
    for key, spec in specs.items():
        idle = max(spec.min_nodes - placer.used(key), 0)
        if idle:
            result.idle_nodes[key] = idle
            result.idle_monthly_by_pool[key] = idle * spec.node_hourly_usd * HOURS_PER_MONTH

    lines = result.cost_lines(live)
    if monthly_budget_usd is not None:
        result.replica_budget_usd = monthly_budget_usd - result.idle_monthly_usd
        caps = budget_caps(lines, result.replica_budget_usd)
    else:
        caps = {line.model: line.max_replicas for line in lines}
    for d in live:
        high = caps[d.model]
        result.capped_high[d.model] = high
        if high < d.high:
            for s in d.sites:
                notes[d.model][s.cluster].append(f"budget: environment max capped {d.high}→{high}")
    if any(caps[line.model] < line.max_replicas for line in lines):
        result.notes.append("budget: maximum replicas capped to keep the worst case within budget")
    if result.idle_nodes:
        kept = ", ".join(f"{k} {n}" for k, n in sorted(result.idle_nodes.items()))
        result.notes.append(
            f"idle nodes kept by minNodes: {kept} (${result.idle_monthly_usd:,.0f}/month)"
        )

    # Pass 2: headroom up to the capped maximum, aiming at each site's weighted share.
    for d in live:
        low = placed_low[d.model]
        ideal = _seated(caps[d.model], d.sites, d.site_floor_max)
        growth = {c: max(ideal[c] - low[c], 0) for c in ideal}
        remaining = max(caps[d.model] - sum(low.values()), 0)
        order = [s.cluster for s in d.sites]
        if sum(growth.values()) > remaining:
            growth = _bounded_shares(remaining, growth, order)
        else:
            # Minimums that moved to other sites free headroom; give it to the weights.
            extra = remaining - sum(growth.values())
            more = largest_remainder(extra, {s.cluster: s.weight for s in d.sites}, order)
            growth = {c: growth[c] + more[c] for c in growth}
        grown, missing = _place(placer, d, growth, notes[d.model], "max replicas")
        if missing:
            result.unplaced_max[d.model] = missing
        for s in d.sites:
            lo, hi = low[s.cluster], low[s.cluster] + grown[s.cluster]
            reasons = [f"min {lo} of {lows[d.model]}, max {hi} of {caps[d.model]}"]
            reasons += _dedupe(notes[d.model][s.cluster])
            result.shares[(d.model, s.cluster)] = Share(lo, hi, tuple(reasons))
    for key, spec in specs.items():
        result.nodes_at_max[key] = placer.used(key)
        result.pool_limits[key] = spec.max_nodes
    return result


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


def split_canary(weight: int, low: int, high: int) -> tuple[int, int, int, int]:
    """A site's `low`..`high` replicas split into (stable min, stable max, canary min, canary max).

    The canary's share of the maximum follows its traffic weight (largest
    remainder, at least one replica, never the stable's last); it keeps a
    standing replica wherever the site keeps two or more. Both always sum
    to the site's bounds, so canaries count inside the model's maximum and
    budget. Without a weight, or with room for one replica only, no canary.
    """
    if weight <= 0 or high < 2:
        return low, high, 0, 0
    split = largest_remainder(
        high, {"stable": 100.0 - weight, "canary": float(weight)}, ["stable", "canary"]
    )
    canary_hi = min(max(split["canary"], 1), high - 1)
    stable_hi = high - canary_hi
    canary_lo = min(canary_hi, max(low - stable_hi, 1 if low >= 2 else 0))
    return low - canary_lo, stable_hi, canary_lo, canary_hi


def _dedupe(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))
