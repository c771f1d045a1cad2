"""The allocator: bounds respected, totals preserved, never above budget or capacity."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from llmgen.plan.allocate import Allocation, Demand, Site, allocate, largest_remainder

HOURS = 730

CLUSTERS = ["a", "b", "c", "d"]


@st.composite
def environments(
    draw: st.DrawFn, roomy: bool = False
) -> tuple[list[Demand], dict[str, int], float]:
    """Random demands over up to four clusters with two pools each, and a budget."""
    clusters = draw(st.lists(st.sampled_from(CLUSTERS), min_size=1, max_size=4, unique=True))
    pools = {
        f"{c}/{p}": draw(st.integers(50, 60) if roomy else st.integers(0, 6))
        for c in clusters
        for p in ("x1", "x8")
    }
    demands = []
    for i in range(draw(st.integers(1, 4))):
        gpus = draw(st.sampled_from([1, 2, 4]))
        on = draw(
            st.lists(st.sampled_from(clusters), min_size=1, max_size=len(clusters), unique=True)
        )
        sites = tuple(
            Site(
                cluster=c,
                weight=float(draw(st.integers(0, 100))),
                replica_hourly_usd=gpus * draw(st.floats(0.3, 60.0)),
                pool=f"{c}/x1" if gpus == 1 and draw(st.booleans()) else f"{c}/x8",
                replicas_per_node=1 if gpus == 1 else 8 // gpus,
            )
            for c in sorted(on)
        )
        # An x1 pool holds one 1-GPU replica per node; x8 holds 8 // gpus.
        sites = tuple(
            Site(
                s.cluster,
                s.weight,
                s.replica_hourly_usd,
                s.pool,
                1 if s.pool.endswith("x1") else 8 // gpus,
            )
            for s in sites
        )
        low = draw(st.integers(0, 6))
        high = low + draw(st.integers(0, 20))
        demands.append(Demand(f"m{i}", low, high, sites, scale_to_zero=draw(st.booleans())))
    budget = draw(st.floats(0, 400_000))
    return demands, pools, budget


def _min_cost(d: Demand) -> float:
    """The minimum the allocator promises to fit: floors in, dearest cluster's price."""
    return _effective_low(d) * max(s.replica_hourly_usd for s in d.sites) * HOURS


def _max_cost(d: Demand, a: Allocation) -> float:
    return sum(
        a.shares[(d.model, s.cluster)].max_replicas * s.replica_hourly_usd * HOURS for s in d.sites
    )


def _effective_low(d: Demand) -> int:
    if d.scale_to_zero:
        return min(d.low, d.high)
    return min(max(d.low, len(d.sites)), d.high)


@settings(max_examples=300, deadline=None)
@given(environments())
def test_bounds_capacity_and_budget(env: tuple[list[Demand], dict[str, int], float]) -> None:
    demands, pools, budget = env
    a = allocate(demands, pools, budget)
    for d in demands:
        shares = [a.shares[(d.model, s.cluster)] for s in d.sites]
        assert all(0 <= sh.min_replicas <= sh.max_replicas for sh in shares)
        assert (
            sum(sh.max_replicas for sh in shares)
            <= a.capped_high[d.model]
            <= max(d.high, _effective_low(d))
        )
        assert sum(sh.min_replicas for sh in shares) <= _effective_low(d)
    # Capacity: the nodes every pool needs, counted model by model, never exceed its limit.
    used: dict[str, int] = dict.fromkeys(pools, 0)
    for d in demands:
        for s in d.sites:
            used[s.pool] += math.ceil(
                a.shares[(d.model, s.cluster)].max_replicas / s.replicas_per_node
            )
    assert all(used[p] <= pools[p] for p in pools), (used, pools)
    assert a.nodes_at_max == used
    # Budget: whenever the minimums fit (priced at each model's dearest cluster), the maxima do.
    if sum(_min_cost(d) for d in demands) <= budget:
        assert sum(_max_cost(d, a) for d in demands) <= budget * (1 + 1e-9)


@settings(max_examples=300, deadline=None)
@given(environments(roomy=True))
def test_totals_preserved_with_room(env: tuple[list[Demand], dict[str, int], float]) -> None:
    demands, pools, _ = env
    a = allocate(demands, pools, None)
    for d in demands:
        shares = [a.shares[(d.model, s.cluster)] for s in d.sites]
        assert sum(sh.min_replicas for sh in shares) == _effective_low(d)
        assert sum(sh.max_replicas for sh in shares) == d.high
        if not d.scale_to_zero and d.high >= len(d.sites):
            # A model that may not scale to zero keeps a replica everywhere it runs.
            assert all(sh.min_replicas >= 1 for sh in shares)


@given(st.integers(0, 1000), st.lists(st.integers(0, 100), min_size=1, max_size=6))
def test_largest_remainder_sums_and_stays_near_proportional(total: int, ws: list[int]) -> None:
    order = [f"c{i}" for i in range(len(ws))]
    weights = {c: float(w) for c, w in zip(order, ws, strict=True)}
    shares = largest_remainder(total, weights, order)
    assert sum(shares.values()) == total
    mass = sum(ws) or len(ws)
    for c, w in zip(order, ws, strict=True):
        exact = total * (w if sum(ws) else 1) / mass
        assert math.floor(exact) <= shares[c] <= math.ceil(exact)


def _site(cluster: str, weight: float, price: float, pool: str, per_node: int = 1) -> Site:
    return Site(cluster, weight, price, pool, per_node)


def test_weights_decide_the_split() -> None:
    d = Demand("m", 4, 10, (_site("a", 30, 1.0, "a/p"), _site("b", 70, 1.0, "b/p")))
    a = allocate([d], {"a/p": 100, "b/p": 100}, None)
    assert (a.shares[("m", "a")].min_replicas, a.shares[("m", "a")].max_replicas) == (1, 3)
    assert (a.shares[("m", "b")].min_replicas, a.shares[("m", "b")].max_replicas) == (3, 7)


def test_overflow_moves_to_the_cheapest_cluster_with_room() -> None:
    sites = (
        _site("a", 50, 5.0, "a/p"),
        _site("b", 25, 9.0, "b/p"),
        _site("c", 25, 2.0, "c/p"),
    )
    d = Demand("m", 0, 8, sites)
    a = allocate([d], {"a/p": 1, "b/p": 10, "c/p": 10}, None)
    # a wants 4 but holds 1; its 3 extra go to c (cheapest with room), not b.
    assert a.shares[("m", "a")].max_replicas == 1
    assert a.shares[("m", "b")].max_replicas == 2
    assert a.shares[("m", "c")].max_replicas == 5
    assert any("pool a/p holds 1 of 4" in r for r in a.shares[("m", "a")].reasons)


def test_minimums_of_every_model_are_placed_before_anyones_headroom() -> None:
    first = Demand("first", 0, 6, (_site("a", 1, 1.0, "a/p"),))
    second = Demand("second", 2, 2, (_site("a", 1, 1.0, "a/p"),))
    a = allocate([first, second], {"a/p": 4}, None)
    assert a.shares[("second", "a")].min_replicas == 2
    assert a.shares[("first", "a")].max_replicas == 2


def test_budget_caps_the_maximum_like_validate_announces() -> None:
    # 2 models, $1/h per replica: min 1+1, max 11+11; budget fits min + half the headroom.
    sites = (_site("a", 1, 1.0, "a/p"),)
    demands = [Demand("x", 1, 11, sites), Demand("y", 1, 11, sites)]
    budget = (2 + 10) * HOURS
    a = allocate(demands, {"a/p": 100}, budget)
    assert a.capped_high == {"x": 6, "y": 6}
    assert a.notes and "budget" in a.notes[0]
    assert "budget: environment max capped 11→6" in a.shares[("x", "a")].reasons


def test_a_model_that_cannot_scale_to_zero_keeps_a_replica_per_cluster() -> None:
    sites = (_site("a", 90, 1.0, "a/p"), _site("b", 10, 1.0, "b/p"))
    d = Demand("m", 0, 4, sites, scale_to_zero=False)
    a = allocate([d], {"a/p": 10, "b/p": 10}, None)
    assert a.shares[("m", "a")].min_replicas == 1
    assert a.shares[("m", "b")].min_replicas == 1
    assert any("may not scale to zero" in r for r in a.shares[("m", "b")].reasons)
    # A model that may scale to zero keeps the catalog's minimum of 0.
    z = allocate([Demand("m", 0, 4, sites, scale_to_zero=True)], {"a/p": 10, "b/p": 10}, None)
    assert z.shares[("m", "a")].min_replicas == z.shares[("m", "b")].min_replicas == 0


def test_shared_pool_counts_nodes_per_model() -> None:
    # 8-GPU nodes: a 4-GPU model packs 2 per node, a 1-GPU model 8 per node.
    big = Demand("big", 0, 3, (_site("a", 1, 8.0, "a/h", per_node=2),))
    small = Demand("small", 0, 9, (_site("a", 1, 1.0, "a/h", per_node=8),))
    a = allocate([big, small], {"a/h": 3}, None)
    assert a.shares[("big", "a")].max_replicas == 3  # 2 nodes
    assert a.shares[("small", "a")].max_replicas == 8  # 1 node left: 8 of 9
    assert a.nodes_at_max == {"a/h": 3}
