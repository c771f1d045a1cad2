"""What the plan could not give the catalog, as located diagnostics.

The allocator decides how many replicas run where; whatever it could not
give (a minimum no pool holds, a maximum the budget or the pools cap, a
canary with no room, a floor that raised a minimum) is said here, at the
environment's model entry or budget line, so `llmgen validate` and every
command that renders refuse or warn before anything reaches a cluster.
Nothing the catalog asks for is dropped or changed silently.

These checks run the allocator, so they live in plan/ (catalog/ may not
import plan/): `validate_with_plan` is catalog validation followed by them,
and is what `validate`, `render`, `plan`, `diff` and the lifecycle verbs use.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from llmgen.catalog import cost
from llmgen.catalog.load import PathKey
from llmgen.catalog.model import Catalog, Environment, ModelDeployment
from llmgen.catalog.validate import ValidationResult, validate
from llmgen.clouds import aws_mirror
from llmgen.errors import Diagnostic
from llmgen.plan.allocate import Allocation, Demand
from llmgen.plan.build import EnvironmentPlan, Plan, build_plan


def validate_with_plan(root: Path) -> tuple[ValidationResult, Plan | None]:
    """Validate the catalog, then (when it has no error) plan it and check the plan.

    The plan is returned so a caller that renders need not build it twice.
    """
    result = validate(root)
    if not result.ok or result.catalog is None:
        return result, None
    plan = build_plan(result.catalog)
    result.diagnostics = sorted([*result.diagnostics, *plan_diagnostics(result.catalog, plan)])
    return result, plan


def plan_diagnostics(catalog: Catalog, plan: Plan) -> list[Diagnostic]:
    """Every located error and warning about what the plan could not give."""
    found: list[Diagnostic] = []
    for env in catalog.environments.values():
        ep = plan.environments.get(env.name)
        if ep is None:
            continue
        budget = list(_budget(env, ep))
        found += budget
        # Minimums over budget are the error to fix first; caps follow from it.
        capped = not env.suspended and not any(d.is_error for d in budget)
        for i, dep in enumerate(env.models):
            demand = ep.demands.get(dep.name)
            if demand is not None:
                found += _model(env, ep, i, dep, demand, capped)
    found += _bucket_policy(catalog, plan)
    return sorted(found)


def _bucket_policy(catalog: Catalog, plan: Plan) -> list[Diagnostic]:
    """The S3 mirror's bucket policy lists every revision in use; S3 takes 20 KB at most."""
    mirror = catalog.platform.weights_mirrors.get("aws") if catalog.platform else None
    cp = plan.clusters.get(mirror.sync_cluster) if mirror is not None else None
    if mirror is None or cp is None:
        return []
    prefixes = [i.prefix for i in cp.mirror_items if i.commit]
    account = cp.cluster.cloud_settings.get("accountID", "")
    size = aws_mirror.policy_bytes(
        aws_mirror.bucket_policy(
            mirror.bucket, mirror.kms_key, account, prefixes, cp.mirror_reader_accounts
        )
    )
    if size <= aws_mirror.BUCKET_POLICY_MAX_BYTES:
        return []
    return [
        mirror.where.error(
            f"the bucket policy protecting the {len(prefixes)} revisions in use would be "
            f"{size:,} bytes, over S3's {aws_mirror.BUCKET_POLICY_MAX_BYTES:,} (about 170 "
            "revisions fit); finish canaries and drop revisions no environment needs"
        )
    ]


def _usd(amount: float) -> str:
    return f"${amount:,.0f}"


def _replicas(dep: ModelDeployment, i: int, which: str) -> PathKey:
    """Where a bound is written: the entry's override, else the entry itself."""
    given = dep.min_replicas if which == "min" else dep.max_replicas
    return ("models", i, "replicas", which) if given is not None else ("models", i)


def _pools(ep: EnvironmentPlan, demand: Demand) -> str:
    """The model's pools and how full they are at the maximum."""
    a = ep.allocation
    seen = {
        s.pool: f"{s.pool}: {a.nodes_at_max.get(s.pool, 0)} of {a.pool_limits.get(s.pool, 0)} "
        "nodes used"
        for s in demand.sites
    }
    return ", ".join(seen.values())


def _model(
    env: Environment, ep: EnvironmentPlan, i: int, dep: ModelDeployment, d: Demand, capped: bool
) -> Iterator[Diagnostic]:
    a: Allocation = ep.allocation
    name = dep.name
    if not d.sites:
        yield env.where.error(
            f"no cluster of {env.name!r} can run {name!r}: none of its target clusters has a "
            "priced node pool that holds a replica",
            "models",
            i,
        )
        return
    low = a.effective_low.get(name, d.low)
    if low > d.low:
        why = (
            f"a stable and a canary replica on each of its {len(d.sites)} cluster(s)"
            if d.canary_weight
            else f"the model may not scale to zero (scaling.scaleToZero is false), so each of "
            f"its {len(d.sites)} cluster(s) keeps a replica"
        )
        yield env.where.warning(
            f"minimum replicas raised {d.low}→{low} for {name!r}: {why}", *_replicas(dep, i, "min")
        )
    missing_min = a.unplaced_min.get(name, 0)
    if missing_min:
        yield env.where.error(
            f"{missing_min} of the {low} minimum replicas of {name!r} fit in no node pool "
            f"({_pools(ep, d)}); raise maxNodes, add a pool or lower the minimum",
            *_replicas(dep, i, "min"),
        )
    cap = a.capped_high.get(name, d.high)
    if cap < d.high and capped:
        budget = env.monthly_budget_usd
        if cap == 0:
            yield env.where.error(
                f"the budget of {_usd(budget)}/month leaves {name!r} no replica (maximum {d.high} "
                "capped to 0): raise budget.monthlyUSD or remove the model from the environment",
                *_replicas(dep, i, "max"),
            )
        else:
            yield env.where.warning(
                f"maximum replicas of {name!r} capped {d.high}→{cap} by the budget of "
                f"{_usd(budget)}/month ({_usd(_uncapped_max(ep))}/month at every maximum)",
                *_replicas(dep, i, "max"),
            )
    short = a.unplaced_max.get(name, 0) - missing_min
    if short > 0:
        yield env.where.warning(
            f"maximum replicas of {name!r} capped {cap}→{cap - short - missing_min} by node "
            f"pool capacity ({_pools(ep, d)})",
            *_replicas(dep, i, "max"),
        )
    shares = {s.cluster: a.shares[(name, s.cluster)] for s in d.sites}
    empty = [c for c, sh in shares.items() if sh.max_replicas == 0]
    if empty and cap > 0 and not missing_min:
        yield env.where.warning(
            f"{name!r} gets no replica on {', '.join(empty)}: its maximum of {cap} is "
            f"spread over {len(d.sites)} clusters by weight",
            *_replicas(dep, i, "max"),
        )
    if d.canary_weight:
        tight = [c for c, sh in shares.items() if 0 < sh.max_replicas < 2]
        if tight:
            yield env.where.error(
                f"the canary of {name!r} needs a replica beside the stable one on every "
                f"cluster, but its maximum on {', '.join(tight)} is 1; raise replicas.max "
                f"to at least {2 * len(d.sites)}",
                "models",
                i,
                "canary",
            )


def _uncapped_max(ep: EnvironmentPlan) -> float:
    """What every model at its catalog maximum would cost, with idle nodes."""
    lines = ep.allocation.cost_lines(list(ep.demands.values()))
    return cost.monthly_max(lines) + ep.allocation.idle_monthly_usd


def _budget(env: Environment, ep: EnvironmentPlan) -> Iterator[Diagnostic]:
    """Minimums (and idle nodes) over budget: error; maxima over it: the caps, as a warning."""
    if env.suspended:
        return  # a suspended environment runs nothing
    a = ep.allocation
    lines = a.cost_lines(list(ep.demands.values()))
    idle = a.idle_monthly_usd
    low, high = cost.monthly_min(lines) + idle, cost.monthly_max(lines) + idle
    limit = env.monthly_budget_usd
    idle_note = f" (idle nodes kept by minNodes: {_usd(idle)})" if idle else ""
    if low > limit:
        largest = sorted(lines, key=lambda line: (-line.monthly_min, line.model))[:3]
        terms = ", ".join(
            f"{line.model} {line.min_replicas} × ${line.replica_hourly_usd:.2f}/h × "
            f"{cost.HOURS_PER_MONTH} h = {_usd(line.monthly_min)}"
            for line in largest
            if line.monthly_min > 0
        )
        yield env.where.error(
            f"minimum replicas cost {_usd(low)}/month{idle_note}, over the budget of "
            f"{_usd(limit)}/month (largest: {terms})",
            "budget",
            "monthlyUSD",
        )
    elif high > limit:
        changed = [line for line in lines if a.capped_high[line.model] < line.max_replicas]
        shown = ", ".join(
            f"{line.model} {line.max_replicas}→{a.capped_high[line.model]}" for line in changed[:6]
        )
        more = f" and {len(changed) - 6} more" if len(changed) > 6 else ""
        capped = idle + sum(
            a.capped_high[line.model] * line.replica_hourly_usd * cost.HOURS_PER_MONTH
            for line in lines
        )
        yield env.where.warning(
            f"maximum replicas cost {_usd(high)}/month{idle_note}, over the budget of "
            f"{_usd(limit)}/month; llmgen caps maxReplicas to {shown}{more} "
            f"({_usd(capped)}/month)",
            "budget",
            "monthlyUSD",
        )
