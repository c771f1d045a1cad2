"""Cluster versions: a cluster runs what llmgen renders for it.

Some fields llmgen renders exist only from a given Kubernetes minor, or are
behind a feature gate that is off by default before it. An API server that
does not know a field, or whose gate is off, drops it on admission without a
word (alpha fields are cleared when their gate is disabled), so the pods run
without it: a model Deployment on 1.29 loses its `preStop.sleep` and is cut
mid-request on every scale-down. `validate` refuses such a cluster at its
`kubernetesVersion` line instead.

`RENDERED_FEATURES` lists each such field with the first minor where it
works with default gates, and the evidence. tests/test_versions.py checks
the list against the rendered tree (every listed field is rendered) and the
strict schemas of kubernetes-validate (the field is unknown before it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from llmgen.catalog import engines
from llmgen.catalog.model import Cluster
from llmgen.catalog.rulekit import Context, Rule, placed_models, targets
from llmgen.errors import Diagnostic


def _always(images: Iterable[str]) -> bool:
    return True


def _sleeps_before_stop(images: Iterable[str]) -> bool:
    """vLLM that drains itself (--shutdown-timeout) gets a plain `preStop.sleep`;
    older images get an exec drain instead (render/concerns/vllm.py `prestop`)."""
    return any(engines.capabilities(image).shutdown_timeout for image in images)


@dataclass(frozen=True)
class Feature:
    """A rendered field and the Kubernetes minor it needs."""

    #: how the reader knows it: the field as written in the manifest
    name: str
    #: the kind it is rendered on, and its path there (for the tests)
    kind: str
    path: tuple[str, ...]
    #: the first minor where it works with the default feature gates
    since: tuple[int, int]
    #: why that minor (feature gate, KEP)
    evidence: str
    #: whether it is rendered for a cluster whose model pods run these images
    rendered_for: Callable[[Iterable[str]], bool] = _always


#: Fields rendered on every cluster that runs a model (models/<model>.yaml).
RENDERED_FEATURES: tuple[Feature, ...] = (
    Feature(
        "lifecycle.preStop.sleep",
        "Deployment",
        ("spec", "template", "spec", "containers", "*", "lifecycle", "preStop", "sleep"),
        (1, 30),
        "feature gate PodLifecycleSleepAction: alpha (off) in 1.29, on by default from 1.30 "
        "(KEP-3960)",
        _sleeps_before_stop,
    ),
    Feature(
        "PodDisruptionBudget spec.unhealthyPodEvictionPolicy",
        "PodDisruptionBudget",
        ("spec", "unhealthyPodEvictionPolicy"),
        (1, 27),
        "feature gate PDBUnhealthyPodEvictionPolicy: alpha (off) in 1.26, on by default from "
        "1.27 (KEP-3017)",
    ),
)


def parse_minor(version: str) -> tuple[int, int] | None:
    """`"1.33"` -> (1, 33); None when it is not a minor version."""
    major, _, minor = version.strip().partition(".")
    if not (major.isdigit() and minor.isdigit()):
        return None
    return int(major), int(minor)


def _needed(cluster: Cluster, images: set[str]) -> Iterator[Feature]:
    have = parse_minor(cluster.kubernetes_version)
    if have is None:
        return  # the schema reports a malformed version
    for feature in RENDERED_FEATURES:
        if have < feature.since and feature.rendered_for(sorted(images)):
            yield feature


def cluster_versions(ctx: Context) -> Iterator[Diagnostic]:
    """A cluster that runs models is new enough for every field rendered for them."""
    cat = ctx.catalog
    running: dict[str, Cluster] = {}
    images: dict[str, set[str]] = {}
    for env, _, dep, model in placed_models(cat):
        for c in targets(cat, env, dep):
            running[c.name] = c
            images.setdefault(c.name, set()).add(model.image)
            if dep.canary is not None and dep.canary.image:
                images[c.name].add(dep.canary.image)
    for cluster in sorted(running.values(), key=lambda c: c.name):
        missing = list(_needed(cluster, images[cluster.name]))
        if not missing:
            continue
        need = max(f.since for f in missing)
        fields = "; ".join(
            f"{f.name} needs {f.since[0]}.{f.since[1]} ({f.evidence})" for f in missing
        )
        yield cluster.where.error(
            f"Kubernetes {cluster.kubernetes_version} is older than the fields llmgen renders "
            f"for the models on {cluster.name!r} ({need[0]}.{need[1]} or newer): {fields}; an "
            "older API server drops them silently",
            "kubernetesVersion",
        )


#: A multi-node model's pods keep a group in one zone with a pod-affinity term
#: using `matchLabelKeys` (render/concerns/group.py). The LeaderWorkerSet CRD
#: accepts the field at any version; the API server creating the pods (from
#: the controller's StatefulSets) drops it while the gate is off.
GROUP_AFFINITY_SINCE = (1, 31)
GROUP_AFFINITY_EVIDENCE = (
    "podAffinity matchLabelKeys: feature gate MatchLabelKeysInPodAffinity, alpha (off) in "
    "1.29 and 1.30, on by default from 1.31 (KEP-3633)"
)


def multi_node_versions(ctx: Context) -> Iterator[Diagnostic]:
    """A cluster that runs a multi-node model keeps a group's pods in one zone."""
    cat = ctx.catalog
    clusters: dict[str, tuple[Cluster, str]] = {}
    for env, _, dep, model in placed_models(cat):
        if model.multi_node:
            for c in targets(cat, env, dep):
                clusters.setdefault(c.name, (c, model.name))
    for name in sorted(clusters):
        cluster, model_name = clusters[name]
        have = parse_minor(cluster.kubernetes_version)
        if have is None or have >= GROUP_AFFINITY_SINCE:
            continue
        need = ".".join(map(str, GROUP_AFFINITY_SINCE))
        yield cluster.where.error(
            f"Kubernetes {cluster.kubernetes_version} is older than multi-node model "
            f"{model_name!r} needs on {cluster.name!r} ({need} or newer): "
            f"{GROUP_AFFINITY_EVIDENCE}; an older API server drops it silently and a group's "
            "pods may land in different zones",
            "kubernetesVersion",
        )


VERSION_RULES: tuple[Rule, ...] = (cluster_versions, multi_node_versions)
