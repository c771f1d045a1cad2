"""The allocator: bounds respected, totals preserved, never above budget or capacity.

Nothing is dropped silently: what the pools cannot hold is reported
(`unplaced_min`, `unplaced_max`) so plan can turn it into a located error or
warning. The budget caps spend as much of the budget as replica granularity
allows and leave every model room to autoscale when the money allows it.
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from llmgen.catalog.cost import CostLine, budget_caps
from llmgen.plan.allocate import (
    Allocation,
    Demand,
    PoolSpec,
    Site,
    allocate,
    largest_remainder,
    split_canary,
    with_floor,
)

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
        canary = draw(st.sampled_from([0, 0, 10, 50]))
        demands.append(
            Demand(
                f"m{i}", low, high, sites, scale_to_zero=draw(st.booleans()), canary_weight=canary
            )
        )
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
    """The floors by hand: a replica per cluster (two with a canary) unless it may idle at 0."""
    keeps = not d.scale_to_zero or (d.canary_weight > 0 and d.low > 0)
    floor = (2 if d.canary_weight else 1) if keeps else 0
    return min(max(d.low, floor * len(d.sites)), max(d.high, d.low))


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
        # Nothing is dropped silently: what was not placed is reported.
        placed_low = sum(sh.min_replicas for sh in shares)
        assert placed_low + a.unplaced_min.get(d.model, 0) == _effective_low(d)
        placed_high = sum(sh.max_replicas for sh in shares)
        assert placed_high + a.unplaced_max.get(d.model, 0) == a.capped_high[d.model]
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


@settings(max_examples=200, deadline=None)
@given(environments(), st.integers(0, 3), st.floats(0.5, 40.0))
def test_idle_nodes_are_paid_within_the_budget(
    env: tuple[list[Demand], dict[str, int], float], keep: int, node_hourly: float
) -> None:
    """Pools keep `keep` nodes each: those the minimums leave idle count before any headroom."""
    demands, limits, budget = env
    pools = {k: PoolSpec(n, min(keep, n), node_hourly) for k, n in limits.items()}
    a = allocate(demands, pools, budget)
    assert set(a.idle_nodes) <= set(pools)
    for key, idle in a.idle_nodes.items():
        assert 0 < idle <= pools[key].min_nodes
        assert a.idle_monthly_by_pool[key] == idle * node_hourly * HOURS
    idle_usd = a.idle_monthly_usd
    if sum(_min_cost(d) for d in demands) + idle_usd <= budget:
        assert sum(_max_cost(d, a) for d in demands) + idle_usd <= budget * (1 + 1e-9) + 1e-6


@settings(max_examples=300, deadline=None)
@given(environments(roomy=True))
def test_totals_preserved_with_room(env: tuple[list[Demand], dict[str, int], float]) -> None:
    demands, pools, _ = env
    a = allocate(demands, pools, None)
    for d in demands:
        shares = [a.shares[(d.model, s.cluster)] for s in d.sites]
        unplaced_min, unplaced_max = a.unplaced_min.get(d.model, 0), a.unplaced_max.get(d.model, 0)
        assert sum(sh.min_replicas for sh in shares) + unplaced_min == _effective_low(d)
        assert sum(sh.max_replicas for sh in shares) + unplaced_max == d.high
        if not d.scale_to_zero and d.high >= len(d.sites) and not unplaced_min:
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


# ---------------------------------------------------------------- budget caps


@st.composite
def cost_lines(draw: st.DrawFn) -> tuple[list[CostLine], float]:
    lines = []
    for i in range(draw(st.integers(1, 6))):
        low = draw(st.integers(0, 5))
        high = low + draw(st.integers(0, 30))
        price = draw(st.sampled_from([0.34, 0.43, 1.0, 2.3, 10.1, 44.1, 55.04]))
        lines.append(CostLine(f"m{i}", low, high, price))
    low_usd = sum(x.monthly_min for x in lines)
    high_usd = sum(x.monthly_max for x in lines)
    budget = draw(st.floats(low_usd, max(high_usd * 1.2, low_usd + 1)))
    return lines, budget


def _spend(lines: list[CostLine], caps: dict[str, int]) -> float:
    return sum(caps[x.model] * x.replica_hourly_usd * HOURS for x in lines)


@settings(max_examples=500, deadline=None)
@given(cost_lines())
def test_budget_caps_spend_what_the_budget_allows(case: tuple[list[CostLine], float]) -> None:
    lines, budget = case
    caps = budget_caps(lines, budget)
    assert all(x.min_replicas <= caps[x.model] <= x.max_replicas for x in lines)
    spend = _spend(lines, caps)
    assert spend <= budget + 1e-3
    if sum(x.monthly_max for x in lines) <= budget:
        # Maxima that fit are never capped.
        assert all(caps[x.model] == x.max_replicas for x in lines)
        return
    # As close to the budget as replica granularity allows: no capped model
    # could take one more replica without going over.
    for x in lines:
        if caps[x.model] < x.max_replicas:
            assert spend + x.replica_hourly_usd * HOURS > budget - 1e-3, (x, caps, spend, budget)
    # Room to autoscale wherever the money allows one replica above the minimum for each.
    room = [x for x in lines if x.max_replicas > x.min_replicas]
    one_each = sum(x.monthly_min for x in lines) + sum(x.replica_hourly_usd * HOURS for x in room)
    if one_each <= budget:
        assert all(caps[x.model] > x.min_replicas for x in room)


def test_budget_caps_spread_in_proportion_to_the_headroom() -> None:
    # $1/h and $2/h replicas, min 1 and 0, max 21 and 10: the budget buys half the headroom.
    lines = [CostLine("a", 1, 21, 1.0), CostLine("b", 0, 10, 2.0)]
    budget = (1 + 10 + 10) * HOURS
    caps = budget_caps(lines, budget)
    assert caps == {"a": 11, "b": 5}
    assert _spend(lines, caps) == budget


def test_budget_caps_fill_what_rounding_leaves() -> None:
    # Flooring the proportional share would leave $2.5/h unspent; one more replica of each fits.
    lines = [CostLine("a", 0, 10, 1.0), CostLine("b", 0, 10, 1.0), CostLine("c", 0, 10, 1.0)]
    caps = budget_caps(lines, 10.5 * HOURS)
    assert sum(caps.values()) == 10
    assert _spend(lines, caps) <= 10.5 * HOURS


# ---------------------------------------------------------------- splits


def test_a_weighted_split_follows_the_weights_before_the_floors() -> None:
    # 70/30 of max 4 is 3/1: the floor of one replica per cluster is met without evening out.
    sites = (_site("a", 70, 1.0, "a/p"), _site("b", 30, 1.0, "b/p"))
    a = allocate([Demand("m", 2, 4, sites, scale_to_zero=False)], {"a/p": 9, "b/p": 9}, None)
    assert a.shares[("m", "a")].max_replicas == 3
    assert a.shares[("m", "b")].max_replicas == 1
    assert (a.shares[("m", "a")].min_replicas, a.shares[("m", "b")].min_replicas) == (1, 1)
    assert with_floor(4, {"a": 90, "b": 10}, ["a", "b"], 1) == {"a": 3, "b": 1}


@given(st.integers(0, 40), st.lists(st.integers(0, 100), min_size=1, max_size=5), st.integers(0, 2))
def test_floors_hold_when_the_total_allows(total: int, ws: list[int], floor: int) -> None:
    order = [f"c{i}" for i in range(len(ws))]
    shares = with_floor(total, {c: float(w) for c, w in zip(order, ws, strict=True)}, order, floor)
    assert sum(shares.values()) == total
    assert all(v >= min(floor, total // len(order)) for v in shares.values())


@given(st.integers(1, 99), st.integers(0, 30), st.integers(0, 30))
def test_a_canary_takes_its_weight_inside_the_bounds(weight: int, a: int, b: int) -> None:
    low, high = min(a, b), max(a, b)
    s_lo, s_hi, c_lo, c_hi = split_canary(weight, low, high)
    assert s_lo + c_lo == low and s_hi + c_hi == high
    assert 0 <= s_lo <= s_hi and 0 <= c_lo <= c_hi
    if high >= 2:
        # A weight above 0 keeps a canary replica, and the stable keeps one too.
        assert c_hi >= 1 and s_hi >= 1
        assert c_hi <= max(1, math.ceil(high * weight / 100))
        assert c_hi >= min(math.floor(high * weight / 100), high - 1)
    if low >= 2:
        assert c_lo >= 1 and s_lo >= 1


def test_a_canary_replica_count_follows_its_traffic_weight() -> None:
    assert split_canary(10, 2, 20) == (1, 18, 1, 2)
    assert split_canary(50, 2, 4) == (1, 2, 1, 2)
    assert split_canary(10, 0, 1) == (0, 1, 0, 0)


def test_a_canary_keeps_a_stable_and_a_canary_replica_per_cluster() -> None:
    sites = (_site("a", 50, 1.0, "a/p"), _site("b", 50, 1.0, "b/p"))
    d = Demand("m", 0, 4, sites, scale_to_zero=False, canary_weight=10)
    a = allocate([d], {"a/p": 9, "b/p": 9}, None)
    assert a.effective_low["m"] == 4
    assert [a.shares[("m", c)].min_replicas for c in "ab"] == [2, 2]
    assert any("stable and a canary" in r for r in a.shares[("m", "a")].reasons)


# ---------------------------------------------------------------- no silent drop


def test_minimums_that_fit_nowhere_are_reported() -> None:
    sites = (_site("a", 1, 1.0, "a/p"),)
    a = allocate([Demand("x", 3, 3, sites), Demand("y", 2, 4, sites)], {"a/p": 4}, None)
    assert a.unplaced_min == {"y": 1}
    assert a.unplaced_max == {"y": 3}  # of its maximum 4, only 1 is placed
    assert a.shares[("y", "a")].max_replicas == 1


def test_a_model_without_any_site_is_reported() -> None:
    a = allocate([Demand("x", 1, 2, ())], {}, None)
    assert a.homeless == ["x"]


def test_idle_nodes_come_off_the_budget_first() -> None:
    # Pool p keeps 3 nodes at $2/h; the minimum uses one, so two idle nodes cost $2,920/month.
    sites = (_site("a", 1, 2.0, "a/p"),)
    pools = {"a/p": PoolSpec(10, min_nodes=3, node_hourly_usd=2.0)}
    a = allocate([Demand("x", 1, 10, sites)], pools, 6 * 2.0 * HOURS)
    assert a.idle_nodes == {"a/p": 2}
    assert a.idle_monthly_usd == 2 * 2.0 * HOURS
    assert a.capped_high == {"x": 4}  # $12/h budget − $4/h idle = 4 replicas at $2/h
    assert any("idle nodes" in n for n in a.notes)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["p", "q"]),
            st.sampled_from(["m1", "m2", "m3"]),
            st.integers(1, 8),
            st.integers(0, 9),
        ),
        max_size=30,
    )
)
def test_pool_node_count_kept_while_adding_equals_the_sum_over_models(
    adds: list[tuple[str, str, int, int]],
) -> None:
    """The running node count (kept for speed) is what summing every model's nodes gives
    (m3 is a multi-node model: each replica a group of 2 nodes)."""
    from llmgen.plan.allocate import _Pools

    pools = _Pools({"p": 100, "q": 100})
    for pool, model, per_node, replicas in adds:
        nodes = 2 if model == "m3" else 1
        pools.add(pool, model, 1 if nodes > 1 else per_node, replicas, nodes)
        for name in ("p", "q"):
            placed = pools.placed.get(name, {}).values()
            assert pools.used(name) == sum(math.ceil(r / k) * n for r, k, n in placed)
