"""How `llmgen status` reads: a rich table per cluster, or JSON."""

from __future__ import annotations

import dataclasses
import json
import shutil
from typing import Any

from llmgen.catalog.names import WEIGHTS_NAMESPACE
from llmgen.gitops.status import MODEL_LABEL, ClusterStatus, StatusReport


def _cluster(c: ClusterStatus) -> dict[str, Any]:
    data = dataclasses.asdict(c)
    data["flux"] = [{**dataclasses.asdict(f), "state": f.state} for f in c.flux]
    data["models"] = [{**dataclasses.asdict(m), "ok": m.ok} for m in c.models]
    data["weights"] = [{**dataclasses.asdict(w), "ok": w.ok} for w in c.weights]
    return {**data, "reachable": c.reachable, "state": c.state, "ok": c.ok}


def to_json(report: StatusReport) -> str:
    """The report as JSON, with the derived `state` and `ok` of every part."""
    clusters = [_cluster(c) for c in report.clusters]
    return json.dumps({"ok": report.ok, "head": report.head, "clusters": clusters}, indent=2)


def to_table(report: StatusReport, width: int | None = None) -> str:
    """A rich table per cluster: Flux objects and models, then the revision."""
    from io import StringIO

    from rich.console import Console
    from rich.table import Table

    buf = StringIO()
    width = width or shutil.get_terminal_size((120, 24)).columns
    console = Console(file=buf, width=width, force_terminal=False, color_system=None)
    for c in report.clusters:
        title = f"{c.cluster} ({c.environment}, context {c.context}): {c.state}"
        if c.error is not None:
            console.print(f"{title}\n  {c.error}\n")
            continue
        table = Table(title=title, title_justify="left", expand=False)
        for col in ("kind", "name", "status", "detail"):
            table.add_column(col, overflow="fold")
        for f in c.flux:
            detail = f"{f.reason}: {f.message}" if f.ready is not True and f.reason else ""
            table.add_row(f.kind, f"{f.namespace}/{f.name}", f.state, detail)
        for m in c.models:
            bounds = f"{m.min_replicas}–{m.max_replicas}" if m.min_replicas is not None else "?"
            via = f" (ScaledObject {m.scaled_object})" if m.scaled_object else ""
            detail = f"{m.ready_replicas} ready of {m.replicas}; bounds {bounds}{via}"
            if m.state == "missing":
                detail = f"no {m.kind} labelled {MODEL_LABEL}={m.model}; plan {bounds}"
            if m.kustomization:
                detail += f"; Kustomization {m.kustomization}: {m.kustomization_state}"
                if m.kustomization_detail and m.kustomization_state != "ready":
                    detail += f" ({m.kustomization_detail})"
            table.add_row(m.kind, f"{m.namespace}/{m.deployment}", m.state, detail)
        for w in c.weights:
            detail = w.uri
            if w.step:
                detail += f"; step {w.step}"
            if w.failed_pods:
                detail += f"; {w.failed_pods} failed pod(s)"
            if w.message:
                detail += f"; {w.message}"
            table.add_row("Job", f"{WEIGHTS_NAMESPACE}/{w.job}", f"sync {w.state}", detail)
        console.print(table)
        rev = (c.revision or "none")[:12] if c.revision_state != "mixed" else c.revision
        head = (report.head or "none")[:12]
        console.print(f"  revision applied {rev}, HEAD {head}: {c.revision_state}\n")
    return buf.getvalue().rstrip("\n")
