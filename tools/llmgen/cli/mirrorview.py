"""The weights mirrors in `llmgen plan`: what each cloud's mirror holds and its storage cost.

Sizes are estimates from `parametersB` and the dtype or quantization (the
mirror holds the weights once per revision, whatever the replica count);
prices are the catalog's `weightsMirror.<cloud>.storageUSDPerGiBMonth`, else
the cloud's standard-class list price.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from llmgen.catalog.model import Catalog
from llmgen.plan.build import Plan
from llmgen.plan.mirror import MirrorCost, items_of, storage_costs


def mirror_costs(
    catalog: Catalog, plan: Plan, environments: Iterable[str] | None
) -> list[MirrorCost]:
    wanted = set(environments) if environments else set(plan.environments)
    placements = [p for name in sorted(wanted) for p in plan.environments[name].placements]
    return storage_costs(catalog, items_of(placements))


def to_data(costs: list[MirrorCost]) -> list[dict[str, Any]]:
    return [
        {
            "cloud": c.cloud,
            "bucket": c.bucket,
            "gib": round(c.gib, 1),
            "usd_per_gib_month": c.usd_per_gib_month,
            "usd_per_month": c.monthly_usd,
            "revisions": [
                {
                    "model": i.model.name,
                    "revision": i.revision,
                    "uri": i.uri,
                    "gib": round(i.gib, 1),
                    "canary": i.canary,
                    "environments": list(i.environments),
                }
                for i in c.items
            ],
        }
        for c in costs
    ]


def to_lines(costs: list[MirrorCost], markdown: bool = False) -> list[str]:
    if not costs:
        return []
    head = "Weights mirrors (storage per cloud, one copy per revision):"
    lines = ["### Weights mirrors" if markdown else head, ""] if markdown else [head]
    for c in costs:
        line = (
            f"{c.cloud} {c.bucket}: {len(c.items)} revision(s), {c.gib:,.1f} GiB, "
            f"${c.monthly_usd:,.2f}/month at ${c.usd_per_gib_month:g}/GiB-month"
        )
        lines.append(f"- **{line}**" if markdown else f"  {line}")
        for i in c.items:
            what = f"{i.model.name}@{i.revision[:12]}{' (canary)' if i.canary else ''}"
            entry = f"{what}: {i.gib:,.1f} GiB ({', '.join(i.environments)})"
            lines.append(f"  - {entry}" if markdown else f"    {entry}")
    return lines
