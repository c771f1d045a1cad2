"""Helpers shared by the autoscaling, monitoring and plan tests: render a repo in memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from llmgen.plan.build import Plan, build_plan
from llmgen.render.engine import render_plan
from llmgen.render.pipeline import checked_catalog


def render_repo(root: Path) -> tuple[Plan, dict[str, list[dict[str, Any]]]]:
    """Plan and render `root`'s catalog; return the plan and the documents per cluster."""
    catalog, _ = checked_catalog(root)
    plan = build_plan(catalog)
    result = render_plan(plan, root / "templates", root)
    docs: dict[str, list[dict[str, Any]]] = {}
    for path, content in result.files.items():
        cluster = path.split("/")[2]
        for doc in yaml.safe_load_all(content.decode()):
            if isinstance(doc, dict) and doc.get("apiVersion") != "kustomize.config.k8s.io/v1beta1":
                docs.setdefault(cluster, []).append(doc)
    return plan, docs


def of_kind(docs: dict[str, list[dict[str, Any]]], kind: str) -> list[tuple[str, dict[str, Any]]]:
    return [(c, d) for c, ds in sorted(docs.items()) for d in ds if d["kind"] == kind]
