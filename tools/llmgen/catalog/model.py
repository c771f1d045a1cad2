"""Typed model of a schema-valid catalog.

`Catalog.build(docs)` turns loaded documents (already checked against
`schemas/`) into frozen dataclasses with defaults applied. Each object keeps
its `Document` and its path inside it, so a rule that finds a problem in, say,
a node pool can point at that node pool's line. Nothing here decides policy;
plan.py and validate.py do.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from llmgen.catalog.load import Document, PathKey
from llmgen.errors import Diagnostic


@dataclass(frozen=True)
class Where:
    """A node inside a document, for diagnostics."""

    doc: Document = field(repr=False, compare=False)
    path: PathKey

    def at(self, *more: str | int) -> Where:
        return Where(self.doc, (*self.path, *more))

    def error(self, message: str, *more: str | int, key: bool = False) -> Diagnostic:
        return self.doc.diagnostic((*self.path, *more), message, key=key)

    def warning(self, message: str, *more: str | int) -> Diagnostic:
        from llmgen.errors import Severity

        return self.doc.diagnostic((*self.path, *more), message, severity=Severity.WARNING)


# --------------------------------------------------------------------- GPUs


@dataclass(frozen=True)
class InstanceType:
    name: str
    gpus: int
    on_demand_usd: float
    spot_usd: float
    #: vCPUs and memory as the cloud lists them (0: unknown, packing by GPU only)
    vcpus: float = 0.0
    memory_gib: float = 0.0
    #: pods the kubelet admits (aws: ENI-limited); None: the kubelet's default
    max_pods: int | None = None
    #: local NVMe SSDs the shape ships (instance store / bundled Local SSD)
    local_ssds: int = 0
    #: network bandwidth in Gbit/s (None: unknown)
    network_gbps: float | None = None

    def hourly(self, capacity_type: str) -> float:
        return self.spot_usd if capacity_type == "spot" else self.on_demand_usd


@dataclass(frozen=True)
class GpuCloudOffer:
    """What one cloud offers of one GPU: its node label value and shapes."""

    label: str  # aws: karpenter instance-gpu-name; gcp: accelerator type
    types: dict[str, InstanceType]


@dataclass(frozen=True)
class Gpu:
    key: str
    memory_gib: float
    offers: dict[str, GpuCloudOffer]  # cloud -> offer
    where: Where
    #: CUDA compute capability, "major.minor" (None: not in the catalog)
    compute_capability: str | None = None


# ----------------------------------------------------------------- clusters


@dataclass(frozen=True)
class NodePool:
    name: str
    gpu: str
    gpus_per_node: int
    instance_types: tuple[str, ...]  # aws instanceTypes, or (machineType,) on gcp
    capacity_type: str
    min_nodes: int
    max_nodes: int
    zones: tuple[str, ...]
    where: Where


@dataclass(frozen=True)
class Cluster:
    name: str
    cloud: str
    region: str
    kubernetes_version: str
    kube_context: str
    network: str
    node_pools: tuple[NodePool, ...]
    cloud_settings: dict[str, Any]  # spec.aws or spec.gcp, as written
    where: Where
    # API groups or group/Kind served before Flux runs (installed out of band).
    prerequisites: tuple[str, ...] = ()

    def pool(self, name: str) -> NodePool | None:
        return next((p for p in self.node_pools if p.name == name), None)


# ------------------------------------------------------------------- models


@dataclass(frozen=True)
class ModelSecret:
    name: str
    key: str
    env: str
    store: str | None
    refresh_interval: str | None
    where: Where


@dataclass(frozen=True)
class ScalingTargets:
    queue_length: float | None
    gpu_utilization: float | None
    p95_latency_seconds: float | None
    kv_cache_usage: float | None


@dataclass(frozen=True)
class Adapter:
    """A LoRA adapter the model's replicas load; clients name it in `model`."""

    name: str
    repo: str
    revision: str
    weight_uris: dict[str, str]
    weights_sha256: str
    rank: int
    where: Where


@dataclass(frozen=True)
class Model:
    name: str
    task: str  # generate | embed
    repo: str
    revision: str
    parameters_b: float
    weight_uris: dict[str, str]
    weights_sha256: str
    image: str
    tensor_parallel: int
    pipeline_parallel: int
    max_model_len: int
    dtype: str
    quantization: str | None
    extra_args: tuple[str, ...]
    gpu: str
    gpu_count: int
    cpu: float
    memory_gib: float
    min_replicas: int
    max_replicas: int
    targets: ScalingTargets
    scale_to_zero: bool
    cooldown_seconds: int
    served_model_name: str
    route_prefix: str
    secrets: tuple[ModelSecret, ...]
    team: str
    cost_center: str
    where: Where
    adapters: tuple[Adapter, ...] = ()
    #: nodes one replica spans (`resources.nodes`): >1 renders a LeaderWorkerSet group
    nodes: int = 1

    @property
    def multi_node(self) -> bool:
        """One replica is a group of `nodes` pods, one per node (a LeaderWorkerSet)."""
        return self.nodes > 1

    @property
    def gpus_per_pod(self) -> int:
        """GPUs each pod of a replica requests: all of them, or gpuCount / nodes."""
        return self.gpu_count // max(self.nodes, 1)


# ------------------------------------------------------------- environments


@dataclass(frozen=True)
class Canary:
    revision: str | None
    image: str | None
    weight: int
    where: Where
    #: SHA-256 of the canary revision's weights manifest (`weightsSha256`)
    weights_sha256: str | None = None


@dataclass(frozen=True)
class ModelDeployment:
    """An environment's entry for one model, with its overrides."""

    name: str
    min_replicas: int | None
    max_replicas: int | None
    clusters: tuple[str, ...] | None
    canary: Canary | None
    where: Where


@dataclass(frozen=True)
class Oidc:
    issuer: str
    jwks_uri: str
    audiences: tuple[str, ...]


@dataclass(frozen=True)
class Environment:
    name: str
    clusters: tuple[str, ...]
    domain: str
    monthly_budget_usd: float
    alert_thresholds: tuple[float, ...]
    secret_stores: dict[str, dict[str, Any]]  # backend -> settings
    secret_refresh_interval: str
    config: dict[str, str]
    tls_issuer: str
    oidc: Oidc | None
    cors_allow_origins: tuple[str, ...]
    waf_enabled: bool
    routing_policy: str
    routing_weights: dict[str, int]
    models: tuple[ModelDeployment, ...]
    require_pinned: bool
    suspended: bool
    #: clusters stopped on their own (`llmgen stop --cluster`); `suspended` stops them all
    suspended_clusters: tuple[str, ...]
    where: Where
    #: gateway.waf.mode: `block` (refuse what the rules match) or `detect` (log only)
    waf_mode: str = "block"
    #: gateway.waf.failurePolicy: `closed` (no traffic without the WAF) or `open`
    waf_failure_policy: str = "closed"
    #: spec.dns: the domain's one authority (provider, zoneID, accountID), or None
    dns: DnsAuthority | None = None
    #: routing.endpointPicking: `service` (the mesh balances over the model
    #: Service) or `inferencePool` (an InferencePool and its endpoint picker
    #: per model and track, render/concerns/inferencepool.py)
    endpoint_picking: str = "service"

    @property
    def uses_inference_pools(self) -> bool:
        return self.endpoint_picking == "inferencePool"


@dataclass(frozen=True)
class DnsAuthority:
    """`Environment.spec.dns`: where every cluster's records and ACME challenges go."""

    provider: str  # route53
    zone_id: str
    account_id: str
    where: Where
    #: spec.dns.healthChecks: Route 53 health check ID per cluster
    health_checks: dict[str, str] = field(default_factory=dict)


# ----------------------------------------------------------------- platform


@dataclass(frozen=True)
class Addon:
    name: str
    chart: str
    repository: str
    version: str
    where: Where


@dataclass(frozen=True)
class WeightsMirror:
    """One cloud's weights mirror (`spec.weightsMirror.<cloud>`): bucket, key, sync cluster."""

    cloud: str
    bucket: str
    #: AWS: the KMS key ARN; GCP: the Cloud KMS CryptoKey resource name
    kms_key: str
    sync_cluster: str
    #: None: the cloud's list price (`CloudProvider.storage_usd_per_gib_month`)
    storage_usd_per_gib_month: float | None
    where: Where
    #: days an object is kept before it may be deleted or replaced (`retentionDays`)
    retention_days: int = 30
    #: GCP: the bucket project's number, for the Cloud Storage service agent's key grant
    project_number: str | None = None


@dataclass(frozen=True)
class Platform:
    git_url: str
    git_branch: str
    git_secret: str
    git_interval: str
    mesh_id: str
    trust_domain: str
    addons: dict[str, Addon]
    where: Where
    #: ACME account contact (`spec.acme.email`); None: each environment's default
    acme_email: str | None = None
    #: Tool image overrides (`spec.images`; catalog/images.py TOOL_IMAGES keys)
    images: dict[str, str] = field(default_factory=dict)
    #: cloud -> the weights mirror llmgen fills there (`spec.weightsMirror`)
    weights_mirrors: dict[str, WeightsMirror] = field(default_factory=dict)


# ------------------------------------------------------------------ catalog


@dataclass
class Catalog:
    """The whole catalog, typed; the input of plan and of cross-document rules."""

    clusters: dict[str, Cluster] = field(default_factory=dict)
    environments: dict[str, Environment] = field(default_factory=dict)
    models: dict[str, Model] = field(default_factory=dict)
    gpus: dict[str, Gpu] = field(default_factory=dict)
    platform: Platform | None = None
    documents: list[Document] = field(default_factory=list)

    def input_hash(self, *docs: Document) -> str:
        """A short, stable hash of the given documents' bytes (provenance)."""
        h = hashlib.sha256()
        for d in sorted(docs or self.documents, key=lambda d: d.file):
            h.update(d.file.encode())
            h.update(d.sha256.encode())
        return h.hexdigest()[:16]

    @classmethod
    def build(cls, docs: list[Document]) -> Catalog:
        """Type the documents; they must already be schema-valid."""
        cat = cls(documents=list(docs))
        for doc in docs:
            builder = _BUILDERS.get(doc.kind)
            if builder is not None:
                builder(cat, doc, doc.data["spec"])
        return cat


def _where(doc: Document, *path: str | int) -> Where:
    return Where(doc, tuple(path))


def _gpus(cat: Catalog, doc: Document, spec: dict[str, Any]) -> None:
    for key, g in spec["gpus"].items():
        offers: dict[str, GpuCloudOffer] = {}
        for cloud, offer in g.items():
            if not isinstance(offer, dict):
                continue
            types = offer.get("instanceTypes") or offer.get("machineTypes") or {}
            label = offer.get("gpuName") or offer.get("accelerator") or ""
            offers[cloud] = GpuCloudOffer(
                label=label,
                types={t: _shape(t, v) for t, v in types.items()},
            )
        cat.gpus[key] = Gpu(
            key,
            float(g["memoryGiB"]),
            offers,
            _where(doc, "spec", "gpus", key),
            compute_capability=g.get("computeCapability"),
        )


def _shape(name: str, v: dict[str, Any]) -> InstanceType:
    network = v.get("networkGbps")
    return InstanceType(
        name,
        v["gpus"],
        float(v["onDemandUSD"]),
        float(v["spotUSD"]),
        vcpus=float(v.get("vcpus", 0)),
        memory_gib=float(v.get("memoryGiB", 0)),
        max_pods=v.get("maxPods"),
        local_ssds=int(v.get("localSsds", 0)),
        network_gbps=float(network) if network is not None else None,
    )


def _cluster(cat: Catalog, doc: Document, spec: dict[str, Any]) -> None:
    name = doc.name
    pools = []
    for i, p in enumerate(spec.get("nodePools", [])):
        types = tuple(
            p.get("instanceTypes") or ([p["machineType"]] if p.get("machineType") else [])
        )
        pools.append(
            NodePool(
                name=p["name"],
                gpu=p["gpu"],
                gpus_per_node=p["gpusPerNode"],
                instance_types=types,
                capacity_type=p.get("capacityType", "on-demand"),
                min_nodes=p.get("minNodes", 0),
                max_nodes=p["maxNodes"],
                zones=tuple(p.get("zones", [])),
                where=_where(doc, "spec", "nodePools", i),
            )
        )
    cat.clusters[name] = Cluster(
        name=name,
        cloud=spec["cloud"],
        region=spec["region"],
        kubernetes_version=str(spec["kubernetesVersion"]),
        kube_context=spec.get("kubeContext", name),
        network=spec.get("network", name),
        node_pools=tuple(pools),
        cloud_settings=dict(spec.get(spec["cloud"], {})),
        where=_where(doc, "spec"),
        prerequisites=tuple(spec.get("prerequisites", ())),
    )


def _model(cat: Catalog, doc: Document, spec: dict[str, Any]) -> None:
    engine = spec["engine"]
    res = spec["resources"]
    scaling = spec.get("scaling", {})
    targets = scaling.get("targets", {})
    serving = spec.get("serving", {})
    owner = spec.get("owner", {})
    name = doc.name
    cat.models[name] = Model(
        name=name,
        task=spec.get("task", "generate"),
        repo=spec["source"]["repo"],
        revision=spec["source"]["revision"],
        parameters_b=float(spec["parametersB"]),
        weight_uris=dict(spec.get("weights", {}).get("uris", {})),
        weights_sha256=spec.get("weights", {}).get("sha256", ""),
        image=engine["image"],
        tensor_parallel=engine.get("tensorParallel", 1),
        pipeline_parallel=engine.get("pipelineParallel", 1),
        max_model_len=engine.get("maxModelLen", 8192),
        dtype=engine.get("dtype", "auto"),
        quantization=engine.get("quantization"),
        extra_args=tuple(engine.get("extraArgs", [])),
        gpu=res["gpu"],
        gpu_count=res.get("gpuCount", 1),
        cpu=float(res.get("cpu", 4)),
        memory_gib=float(res.get("memoryGiB", 32)),
        min_replicas=scaling.get("minReplicas", 1),
        max_replicas=scaling.get("maxReplicas", 1),
        targets=ScalingTargets(
            queue_length=targets.get("queueLength"),
            gpu_utilization=targets.get("gpuUtilization"),
            p95_latency_seconds=targets.get("p95LatencySeconds"),
            kv_cache_usage=targets.get("kvCacheUsage"),
        ),
        scale_to_zero=scaling.get("scaleToZero", False),
        cooldown_seconds=scaling.get("cooldownSeconds", 300),
        served_model_name=serving.get("servedModelName", name),
        route_prefix=serving.get("routePrefix", f"/v1/{name}"),
        secrets=tuple(
            ModelSecret(
                name=s["name"],
                key=s["key"],
                env=s["env"],
                store=s.get("store"),
                refresh_interval=s.get("refreshInterval"),
                where=_where(doc, "spec", "secrets", i),
            )
            for i, s in enumerate(spec.get("secrets", []))
        ),
        team=owner.get("team", "unowned"),
        cost_center=owner.get("costCenter", "unassigned"),
        where=_where(doc, "spec"),
        adapters=tuple(
            Adapter(
                name=a["name"],
                repo=a["source"]["repo"],
                revision=a["source"]["revision"],
                weight_uris=dict(a.get("weights", {}).get("uris", {})),
                weights_sha256=a.get("weights", {}).get("sha256", ""),
                rank=a.get("rank", 16),
                where=_where(doc, "spec", "adapters", i),
            )
            for i, a in enumerate(spec.get("adapters", []))
        ),
        nodes=res.get("nodes", 1),
    )


def _config_text(value: Any, written: str | None = None) -> str:
    # Environment variables are text: the value as the catalog wrote it, so
    # `off`, `0755`, `1.10` and `12:30:00` stay themselves rather than YAML
    # 1.1's false, 493, 1.1 and 45000.
    if written is not None:
        return written
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _environment(cat: Catalog, doc: Document, spec: dict[str, Any]) -> None:
    gateway = spec.get("gateway", {})
    oidc = gateway.get("auth", {}).get("oidc")
    budget = spec.get("budget", {})
    deployments = []
    for i, m in enumerate(spec.get("models", [])):
        replicas = m.get("replicas", {})
        canary = m.get("canary")
        w = _where(doc, "spec", "models", i)
        deployments.append(
            ModelDeployment(
                name=m["name"],
                min_replicas=replicas.get("min"),
                max_replicas=replicas.get("max"),
                clusters=tuple(m["clusters"]) if "clusters" in m else None,
                canary=Canary(
                    revision=canary.get("revision"),
                    image=canary.get("image"),
                    weight=canary.get("weight", 10),
                    where=w.at("canary"),
                    weights_sha256=canary.get("weightsSha256"),
                )
                if canary
                else None,
                where=w,
            )
        )
    rotation = spec.get("secretRotation", {})
    cat.environments[doc.name] = Environment(
        name=doc.name,
        clusters=tuple(spec.get("clusters", [])),
        domain=spec["domain"],
        monthly_budget_usd=float(budget.get("monthlyUSD", 0)),
        alert_thresholds=tuple(float(t) for t in budget.get("alertThresholds", [80, 100])),
        secret_stores={k: dict(v) for k, v in spec.get("secretStores", {}).items()},
        secret_refresh_interval=rotation.get("refreshInterval", "1h"),
        config={
            k: _config_text(v, doc.scalar_text.get(("spec", "config", k)))
            for k, v in spec.get("config", {}).items()
        },
        tls_issuer=gateway.get("tls", {}).get("issuer", "letsencrypt-prod"),
        oidc=Oidc(oidc["issuer"], oidc["jwksUri"], tuple(oidc.get("audiences", [])))
        if oidc
        else None,
        cors_allow_origins=tuple(gateway.get("cors", {}).get("allowOrigins", [])),
        waf_enabled=bool(gateway.get("waf", {}).get("enabled", False)),
        routing_policy=spec.get("routing", {}).get("policy", "latency"),
        routing_weights=dict(spec.get("routing", {}).get("weights", {})),
        endpoint_picking=spec.get("routing", {}).get("endpointPicking", "service"),
        models=tuple(deployments),
        require_pinned=bool(spec.get("requirePinned", False)),
        suspended=bool(spec.get("suspended", False)),
        suspended_clusters=tuple(spec.get("suspendedClusters", [])),
        where=_where(doc, "spec"),
        waf_mode=gateway.get("waf", {}).get("mode", "block"),
        waf_failure_policy=gateway.get("waf", {}).get("failurePolicy", "closed"),
        dns=DnsAuthority(
            spec["dns"]["provider"],
            spec["dns"]["zoneID"],
            spec["dns"]["accountID"],
            _where(doc, "spec", "dns"),
            dict(spec["dns"].get("healthChecks", {})),
        )
        if "dns" in spec
        else None,
    )


def _platform(cat: Catalog, doc: Document, spec: dict[str, Any]) -> None:
    gitops = spec.get("gitops", {})
    mesh = spec.get("mesh", {})
    cat.platform = Platform(
        git_url=gitops.get("url", ""),
        git_branch=gitops.get("branch", "main"),
        git_secret=gitops.get("secretRef", "flux-system"),
        git_interval=gitops.get("interval", "5m"),
        mesh_id=mesh.get("meshID", "llm-mesh"),
        trust_domain=mesh.get("trustDomain", "cluster.local"),
        addons={
            k: Addon(
                k, v["chart"], v["repository"], str(v["version"]), _where(doc, "spec", "addons", k)
            )
            for k, v in spec.get("addons", {}).items()
        },
        where=_where(doc, "spec"),
        acme_email=spec.get("acme", {}).get("email"),
        images=dict(spec.get("images", {})),
        weights_mirrors={
            cloud: WeightsMirror(
                cloud=cloud,
                bucket=m["bucket"],
                kms_key=m["kmsKey"],
                sync_cluster=m["syncCluster"],
                storage_usd_per_gib_month=(
                    float(m["storageUSDPerGiBMonth"]) if "storageUSDPerGiBMonth" in m else None
                ),
                where=_where(doc, "spec", "weightsMirror", cloud),
                retention_days=int(m.get("retentionDays", 30)),
                project_number=m.get("projectNumber"),
            )
            for cloud, m in spec.get("weightsMirror", {}).items()
        },
    )


_BUILDERS = {
    "GpuCatalog": _gpus,
    "Cluster": _cluster,
    "Model": _model,
    "Environment": _environment,
    "Platform": _platform,
}


def at_revision(uri: str, old: str, new: str) -> str | None:
    """`uri` with the path segment naming revision `old` replaced by `new`.

    Mirrors are laid out by revision (`.../<repo>/<revision>/`); None when no
    segment of `uri` names `old`, so the mirror of `new` cannot be located.
    """
    scheme, sep, path = uri.partition("://")
    parts = path.split("/")
    if not sep or old not in parts[1:]:  # parts[0] is the bucket
        return None
    return f"{scheme}://" + "/".join(
        new if (i and part == old) else part for i, part in enumerate(parts)
    )
