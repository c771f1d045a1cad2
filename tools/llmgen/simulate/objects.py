"""The autoscaling objects as rendered: ScaledObjects and node-pool disruption.

The simulation reads the same YAML Flux applies, not the plan's intent: if
a template or another concern changes a trigger, a target or a behaviour, the
simulation follows. Every field is read generically (KEDA's defaults where
a field is absent, kedacore/keda v2.18.1 `apis/keda/v1alpha1`:
pollingInterval 30, cooldownPeriod 300, minReplicaCount 0, maxReplicaCount
100; prometheus `ignoreNullValues` true).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..errors import LlmgenError

GENERATED = "generated/clusters/"
#: GKE's cluster autoscaler removes a node unneeded for this long (its default)
GKE_SCALE_DOWN_UNNEEDED_SECONDS = 600.0
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|m|s)")


class ObjectError(LlmgenError):
    """A rendered object the simulation cannot read (exit 1)."""


@dataclass(frozen=True)
class Trigger:
    name: str
    kind: str
    query: str
    ignore_nulls: bool


@dataclass(frozen=True)
class ScaledObject:
    """The fields of one rendered ScaledObject that drive scaling."""

    path: str
    cluster: str
    name: str
    model: str
    min_replicas: int
    max_replicas: int
    polling_seconds: float
    cooldown_seconds: float
    fallback_failures: int | None
    fallback_replicas: int
    fallback_behavior: str
    scale_up: dict[str, Any]
    scale_down: dict[str, Any]
    formula: str
    target: float
    metric_type: str
    activation: float
    triggers: tuple[Trigger, ...]
    paused_replicas: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _docs(text: bytes) -> Iterator[dict[str, Any]]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for doc in yaml.load_all(text, Loader=loader):
        if isinstance(doc, dict):
            yield doc


def _number(value: object, where: str, default: float) -> float:
    if value is None:
        return default
    try:
        return float(str(value))
    except ValueError:
        raise ObjectError(f"{where}: {value!r} is not a number") from None


def scaled_object(path: str, doc: Mapping[str, Any]) -> ScaledObject:
    """Read one ScaledObject document (from `path`, for messages)."""
    meta = doc.get("metadata") or {}
    spec = doc.get("spec") or {}
    labels = meta.get("labels") or {}
    name = str(meta.get("name", ""))
    where = f"{path}: ScaledObject {name}"
    advanced = spec.get("advanced") or {}
    hpa = (advanced.get("horizontalPodAutoscalerConfig") or {}).get("behavior") or {}
    mods = advanced.get("scalingModifiers") or {}
    triggers = []
    for t in spec.get("triggers") or []:
        meta_t = t.get("metadata") or {}
        kind = str(t.get("type", ""))
        if kind != "prometheus":
            raise ObjectError(
                f"{where}: trigger {t.get('name')!r} of type {kind!r} is not simulated"
            )
        ignore = str(meta_t.get("ignoreNullValues", "true")).lower() not in ("false", "f", "0")
        triggers.append(Trigger(str(t.get("name", "")), kind, str(meta_t.get("query", "")), ignore))
    fallback = spec.get("fallback")
    if not mods.get("formula"):
        raise ObjectError(
            f"{where}: no scalingModifiers.formula (only formula objects are simulated)"
        )
    paused = (meta.get("annotations") or {}).get("autoscaling.keda.sh/paused-replicas")
    return ScaledObject(
        path=path,
        cluster=str(labels.get("llmgen.io/cluster", "")),
        name=name,
        model=str(labels.get("llmgen.io/model", name)),
        min_replicas=int(_number(spec.get("minReplicaCount"), where, 0)),
        max_replicas=int(_number(spec.get("maxReplicaCount"), where, 100)),
        polling_seconds=_number(spec.get("pollingInterval"), where, 30),
        cooldown_seconds=_number(spec.get("cooldownPeriod"), where, 300),
        fallback_failures=int(fallback["failureThreshold"]) if fallback else None,
        fallback_replicas=int(fallback.get("replicas", 0)) if fallback else 0,
        fallback_behavior=str(fallback.get("behavior", "static")) if fallback else "static",
        scale_up=dict(hpa.get("scaleUp") or {}),
        scale_down=dict(hpa.get("scaleDown") or {}),
        formula=str(mods["formula"]),
        target=_number(mods.get("target"), where, 1.0),
        metric_type=str(mods.get("metricType", "AverageValue")),
        activation=_number(mods.get("activationTarget"), where, 0.0),
        triggers=tuple(triggers),
        paused_replicas=int(paused) if paused is not None else None,
    )


#: MiB/s per provisioned GiB and the floor, of GCE Persistent Disk types (approximate
#: figures of Google's Persistent Disk performance table; review finding 8 reads the same)
_PD = {"pd-standard": (0.12, 0.0), "pd-balanced": (0.28, 140.0), "pd-ssd": (0.48, 240.0)}
#: one local NVMe SSD (375 GB) reads about 660 MiB/s
_LOCAL_SSD_GIBPS = 0.64
#: a node's local SSDs together read no faster than this (A3's 16 devices hit the cap)
_LOCAL_SSD_MAX_GIBPS = 8.0
#: instance-store NVMe in RAID0 on the GPU instance types (several drives)
_INSTANCE_STORE_GIBPS = 2.0
#: gp3 without a throughput setting: its 125 MiB/s baseline
_GP3_GIBPS = 125.0 / 1024.0


def disk_gibps(kind: str, spec: Mapping[str, Any]) -> float | None:
    """Where the weights' emptyDir lives on this pool's nodes, and how fast it is.

    GKE: local SSDs when the node pool asks for them, else the boot disk
    (type and size); EKS: instance-store RAID0 when the EC2NodeClass asks
    for it, else the root EBS volume. None: no figure (the cloud's default).
    """
    if kind == "ContainerNodePool":
        node = spec.get("nodeConfig") or {}
        ssd = (node.get("ephemeralStorageLocalSsdConfig") or {}).get("localSsdCount")
        if ssd:
            return float(min(int(ssd) * _LOCAL_SSD_GIBPS, _LOCAL_SSD_MAX_GIBPS))
        per_gib, floor = _PD.get(str(node.get("diskType", "pd-balanced")), (0.0, 0.0))
        if not per_gib:
            return None
        size = float(node.get("diskSizeGb") or 100)
        return max(per_gib * size, floor) / 1024.0
    if str(spec.get("instanceStorePolicy", "")) == "RAID0":
        return _INSTANCE_STORE_GIBPS
    for device in spec.get("blockDeviceMappings") or []:
        ebs = device.get("ebs") or {}
        if device.get("rootVolume") and ebs:
            throughput = ebs.get("throughput")
            return float(throughput) / 1024.0 if throughput else _GP3_GIBPS
    return None


def _seconds(text: str) -> float:
    total = 0.0
    for amount, unit in _DURATION.findall(text):
        total += float(amount) * {"h": 3600.0, "m": 60.0, "s": 1.0}[unit]
    return total


@dataclass
class Rendered:
    """What the simulation reads from one render: ScaledObjects and pool disruption."""

    scaled_objects: dict[tuple[str, str], ScaledObject] = field(default_factory=dict)
    #: (cluster, catalog pool name) -> seconds an empty node lives
    empty_node_seconds: dict[tuple[str, str], float] = field(default_factory=dict)
    #: (cluster, catalog pool name) -> GiB/s the weights' disk reads and writes
    disk_gibps: dict[tuple[str, str], float] = field(default_factory=dict)


def read_rendered(files: Mapping[str, bytes], clusters: set[str] | None = None) -> Rendered:
    """Parse the ScaledObjects and Karpenter NodePools of the selected clusters."""
    out = Rendered()
    for path in sorted(files):
        if not path.startswith(GENERATED) or not path.endswith(".yaml"):
            continue
        cluster = path[len(GENERATED) :].split("/", 1)[0]
        if clusters is not None and cluster not in clusters:
            continue
        text = files[path]
        if not any(k in text for k in (b"kind: ScaledObject", b"NodePool", b"NodeClass")):
            continue
        for doc in _docs(text):
            kind = doc.get("kind")
            if kind == "ScaledObject":
                so = scaled_object(path, doc)
                out.scaled_objects[(cluster, so.name)] = so
            elif kind == "NodePool" and str(doc.get("apiVersion", "")).startswith("karpenter.sh"):
                labels = (doc.get("metadata") or {}).get("labels") or {}
                pool = str(labels.get("llmgen.io/nodepool", ""))
                after = ((doc.get("spec") or {}).get("disruption") or {}).get("consolidateAfter")
                if pool and after is not None and str(after) != "Never":
                    out.empty_node_seconds[(cluster, pool)] = _seconds(str(after))
            elif kind in ("EC2NodeClass", "ContainerNodePool"):
                labels = (doc.get("metadata") or {}).get("labels") or {}
                pool = str(labels.get("llmgen.io/nodepool", ""))
                speed = disk_gibps(kind, doc.get("spec") or {})
                if pool and speed is not None:
                    out.disk_gibps[(cluster, pool)] = speed
    return out
