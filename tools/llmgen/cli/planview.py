"""`llmgen plan`: capacity and cost per environment, cluster and model.

`plan_report(plan)` turns the plan into plain rows (the numbers and the
allocator's reasons); `render_report` prints them as rich tables (text),
JSON, or Markdown with a Mermaid picture of environments -> clusters ->
models for pull-request comments. Nothing here decides anything: the
numbers are the plan's.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from llmgen.errors import Diagnostic
from llmgen.plan.build import HOURS_PER_MONTH, Placement, Plan
from llmgen.plan.interconnect import absent_note as interconnect_note

FORMATS = ("text", "json", "markdown")


@dataclass(frozen=True)
class ModelRow:
    """One model in one cluster."""

    environment: str
    cluster: str
    model: str
    pool: str
    capacity_type: str
    gpus_per_replica: int
    min_replicas: int
    max_replicas: int
    canary_min_replicas: int
    canary_max_replicas: int
    gpus_min: int
    gpus_max: int
    nodes_min: int
    nodes_max: int
    usd_per_hour_min: float
    usd_per_hour_max: float
    usd_per_month_min: float
    usd_per_month_max: float
    spot_savings_per_month_max: float
    reasons: list[str]
    #: LoRA adapters served on the same replicas (no GPUs of their own)
    adapters: list[str] = field(default_factory=list)
    #: nodes one replica spans (a LeaderWorkerSet group when > 1)
    nodes_per_replica: int = 1
    #: the group's interconnect, or the cost of running without one (multi-node only)
    interconnect: str = ""


@dataclass
class ClusterRow:
    environment: str
    cluster: str
    cloud: str
    region: str
    budget_allotment_usd_per_month: float
    gpu_caps: dict[str, int]
    models: list[ModelRow] = field(default_factory=list)

    @property
    def usd_per_month_min(self) -> float:
        return sum(m.usd_per_month_min for m in self.models)

    @property
    def usd_per_month_max(self) -> float:
        return sum(m.usd_per_month_max for m in self.models)


@dataclass
class EnvironmentRow:
    environment: str
    budget_usd_per_month: float
    suspended: bool
    clusters: list[ClusterRow]
    notes: list[str]
    warnings: list[str]
    #: nodes that pools keep (minNodes) and the minimums leave idle: paid regardless
    idle_usd_per_month: float = 0.0

    @property
    def usd_per_month_min(self) -> float:
        return sum(c.usd_per_month_min for c in self.clusters) + self.idle_usd_per_month

    @property
    def usd_per_month_max(self) -> float:
        return sum(c.usd_per_month_max for c in self.clusters) + self.idle_usd_per_month

    @property
    def spot_savings_per_month_max(self) -> float:
        return sum(m.spot_savings_per_month_max for c in self.clusters for m in c.models)

    @property
    def budget_share_min(self) -> float:
        return _share(self.usd_per_month_min, self.budget_usd_per_month)

    @property
    def budget_share_max(self) -> float:
        return _share(self.usd_per_month_max, self.budget_usd_per_month)


def _interconnect_notes(clusters: list[ClusterRow]) -> list[str]:
    return [m.interconnect for c in clusters for m in c.models if m.interconnect]


def _share(amount: float, budget: float) -> float:
    return amount / budget if budget > 0 else math.inf if amount > 0 else 0.0


def _nodes(p: Placement, replicas: int) -> int:
    # Replicas pack by GPU, CPU and memory (plan/fit.py); a group takes its nodes.
    return p.nodes_for(replicas)


def model_row(p: Placement) -> ModelRow:
    lo, hi = p.replicas_min_total, p.replicas_max_total
    return ModelRow(
        environment=p.environment.name,
        cluster=p.cluster.name,
        model=p.model.name,
        adapters=[a.name for a in p.model.adapters],
        pool=p.pool.name,
        capacity_type=p.pool.capacity_type,
        gpus_per_replica=p.model.gpu_count,
        min_replicas=p.min_replicas,
        max_replicas=p.max_replicas,
        canary_min_replicas=p.canary_min_replicas,
        canary_max_replicas=p.canary_max_replicas,
        gpus_min=lo * p.model.gpu_count,
        gpus_max=hi * p.model.gpu_count,
        nodes_min=_nodes(p, lo),
        nodes_max=_nodes(p, hi),
        usd_per_hour_min=round(lo * p.replica_hourly_usd, 4),
        usd_per_hour_max=round(hi * p.replica_hourly_usd, 4),
        usd_per_month_min=round(p.monthly_usd_min, 2),
        usd_per_month_max=round(p.monthly_usd_max, 2),
        spot_savings_per_month_max=round(p.monthly_spot_savings_max, 2),
        reasons=list(p.reasons),
        nodes_per_replica=p.nodes_per_replica,
        interconnect=interconnect_note(p),
    )


def plan_report(
    plan: Plan,
    environments: Iterable[str] | None = None,
    diagnostics: Iterable[Diagnostic] = (),
) -> list[EnvironmentRow]:
    """Rows for every environment (or the named ones), clusters and models sorted by name.

    `diagnostics` are validate's warnings: those located in an environment's
    file (capped maxima, raised minimums, budget) are listed with it.
    """
    found = list(diagnostics)
    wanted = set(environments) if environments else None
    rows = []
    for name in sorted(plan.environments):
        if wanted is not None and name not in wanted:
            continue
        ep = plan.environments[name]
        env = ep.environment
        clusters = []
        for cname in sorted(env.clusters):
            cp = plan.clusters.get(cname)
            if cp is None:
                continue
            row = ClusterRow(
                environment=name,
                cluster=cname,
                cloud=cp.cluster.cloud,
                region=cp.cluster.region,
                budget_allotment_usd_per_month=cp.monthly_budget_usd,
                gpu_caps=dict(cp.gpu_caps),
            )
            row.models = [model_row(p) for p in cp.placements]
            clusters.append(row)
        warnings = [
            f"{d.path}: {d.message}" for d in found if d.location.file == env.where.doc.file
        ]
        total_max = sum(c.usd_per_month_max for c in clusters) + ep.idle_monthly_usd
        if env.monthly_budget_usd and total_max > env.monthly_budget_usd:
            warnings.append(
                f"maximum spend ${total_max:,.0f}/month is over the ${env.monthly_budget_usd:,.0f} "
                "budget (minimums or canaries do not fit)"
            )
        if env.suspended:
            warnings.append("suspended (llmgen stop): every model is held at zero replicas")
        rows.append(
            EnvironmentRow(
                name,
                env.monthly_budget_usd,
                env.suspended,
                clusters,
                [*ep.notes, *_interconnect_notes(clusters)],
                warnings,
                round(ep.idle_monthly_usd, 2),
            )
        )
    return rows


# ------------------------------------------------------------------ output


def _usd(x: float) -> str:
    return f"${x:,.0f}"


def _pct(x: float) -> str:
    return "n/a" if math.isinf(x) else f"{x:.0%}"


def to_json(rows: list[EnvironmentRow]) -> str:
    out = []
    for e in rows:
        out.append(
            {
                "environment": e.environment,
                "budget_usd_per_month": e.budget_usd_per_month,
                "suspended": e.suspended,
                "usd_per_month_min": round(e.usd_per_month_min, 2),
                "usd_per_month_max": round(e.usd_per_month_max, 2),
                "budget_share_max": None
                if math.isinf(e.budget_share_max)
                else round(e.budget_share_max, 4),
                "spot_savings_per_month_max": round(e.spot_savings_per_month_max, 2),
                "idle_usd_per_month": e.idle_usd_per_month,
                "notes": e.notes,
                "warnings": e.warnings,
                "clusters": [
                    {
                        "cluster": c.cluster,
                        "cloud": c.cloud,
                        "region": c.region,
                        "budget_allotment_usd_per_month": c.budget_allotment_usd_per_month,
                        "gpu_caps": c.gpu_caps,
                        "usd_per_month_min": round(c.usd_per_month_min, 2),
                        "usd_per_month_max": round(c.usd_per_month_max, 2),
                        "models": [
                            {
                                k: v
                                for k, v in asdict(m).items()
                                if k not in ("environment", "cluster")
                            }
                            for m in c.models
                        ],
                    }
                    for c in e.clusters
                ],
            }
        )
    return json.dumps({"hours_per_month": HOURS_PER_MONTH, "environments": out}, indent=2)


def _mermaid_id(*parts: str) -> str:
    return "_".join(p.replace("-", "_").replace(".", "_") for p in parts)


def mermaid(rows: list[EnvironmentRow]) -> str:
    """A flowchart: environment -> cluster -> model, edges labelled with replica bounds."""
    lines = ["flowchart LR"]
    for e in rows:
        eid = _mermaid_id("env", e.environment)
        spend = f"{_usd(e.usd_per_month_max)} of {_usd(e.budget_usd_per_month)}/mo"
        lines.append(f'  {eid}["{e.environment}<br/>{spend}"]')
        for c in e.clusters:
            cid = _mermaid_id("cl", c.cluster)
            lines.append(f'  {cid}["{c.cluster}<br/>{c.cloud} {c.region}"]')
            lines.append(f"  {eid} --> {cid}")
            for m in c.models:
                mid = _mermaid_id("m", c.cluster, m.model)
                lines.append(f'  {mid}["{m.model}<br/>{m.gpus_per_replica}× GPU, {m.pool}"]')
                lines.append(f'  {cid} -->|"{m.min_replicas}..{m.max_replicas}"| {mid}')
    return "\n".join(lines)


def _headline(e: EnvironmentRow) -> str:
    spend = f"{_usd(e.usd_per_month_min)}–{_usd(e.usd_per_month_max)}/month"
    share = f"{_pct(e.budget_share_min)}–{_pct(e.budget_share_max)}"
    return (
        f"{e.environment}: {spend} of {_usd(e.budget_usd_per_month)} ({share}); "
        f"spot saves up to {_usd(e.spot_savings_per_month_max)}/month"
    )


COLUMNS = ("cluster", "model", "pool", "replicas", "GPUs", "nodes", "USD/h", "USD/month")


def _cells(c: ClusterRow, m: ModelRow) -> list[str]:
    canary = ""
    if m.canary_max_replicas:
        canary = f" +{m.canary_min_replicas}..{m.canary_max_replicas} canary"
    lora = f" +{len(m.adapters)} LoRA" if m.adapters else ""
    group = ""
    if m.nodes_per_replica > 1:
        per_pod = m.gpus_per_replica // m.nodes_per_replica
        group = f", groups of {m.nodes_per_replica} nodes × {per_pod} GPUs"
    return [
        c.cluster,
        m.model + lora,
        f"{m.pool} ({m.capacity_type}){group}",
        f"{m.min_replicas}..{m.max_replicas}{canary}",
        f"{m.gpus_min}..{m.gpus_max}",
        f"{m.nodes_min}..{m.nodes_max}",
        f"{m.usd_per_hour_min:.2f}..{m.usd_per_hour_max:.2f}",
        f"{_usd(m.usd_per_month_min)}..{_usd(m.usd_per_month_max)}",
    ]


def to_markdown(rows: list[EnvironmentRow]) -> str:
    parts = ["## llmgen plan", "", "```mermaid", mermaid(rows), "```", ""]
    for e in rows:
        parts += [f"### {_headline(e)}", ""]
        parts += [f"> **Warning:** {w}" for w in e.warnings]
        parts += [f"> {n}" for n in e.notes]
        if e.warnings or e.notes:
            parts.append("")
        parts.append("| " + " | ".join((*COLUMNS, "why")) + " |")
        parts.append("|" + "---|" * (len(COLUMNS) + 1))
        for c in e.clusters:
            for m in c.models:
                parts.append("| " + " | ".join((*_cells(c, m), "; ".join(m.reasons))) + " |")
        parts.append("")
    return "\n".join(parts)


def to_text(rows: list[EnvironmentRow], width: int = 160) -> str:
    from rich.console import Console
    from rich.table import Table

    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=False, color_system=None)
    numeric = {"GPUs", "nodes", "USD/h", "USD/month"}
    for e in rows:
        table = Table(title=_headline(e), title_justify="left")
        for col in COLUMNS:
            table.add_column(col, justify="right" if col in numeric else "left")
        for c in e.clusters:
            for m in c.models:
                table.add_row(*_cells(c, m))
        console.print(table)
        for w in e.warnings:
            console.print(f"warning: {w}")
        for n in e.notes:
            console.print(n)
        for c in e.clusters:
            for m in c.models:
                console.print(f"  {c.cluster}/{m.model}: {'; '.join(m.reasons)}")
        console.print()
    return buf.getvalue().rstrip("\n")


def render_report(rows: list[EnvironmentRow], fmt: str) -> str:
    """The report in `fmt` (text, json or markdown)."""
    if fmt == "json":
        return to_json(rows)
    if fmt == "markdown":
        return to_markdown(rows)
    if fmt == "text":
        return to_text(rows)
    raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def plan_command(root: Path, environments: list[str] | None, fmt: str) -> str:
    """What `llmgen plan` prints: validate, plan, report (raises CatalogError on bad input)."""
    from llmgen.errors import UsageError
    from llmgen.plan.build import build_plan
    from llmgen.render.pipeline import checked_catalog

    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    catalog, warnings = checked_catalog(root)
    plan = build_plan(catalog)
    for name in environments or ():
        if name not in plan.environments:
            raise UsageError(
                f"no environment named {name!r}; known: {', '.join(sorted(plan.environments))}"
            )
    report = render_report(plan_report(plan, environments, warnings), fmt)
    from llmgen.cli import mirrorview

    costs = mirrorview.mirror_costs(catalog, plan, environments)
    if fmt == "json":
        data = json.loads(report)
        data["weights_mirrors"] = mirrorview.to_data(costs)
        return json.dumps(data, indent=2)
    lines = mirrorview.to_lines(costs, markdown=fmt == "markdown")
    return "\n".join([report, "", *lines]) if lines else report
