"""Names and the shared view the mesh concerns (gateway, traffic, security) work from.

One place for the Istio object names, namespaces and workload labels the
gateway, routing and security files refer to, so a selector can never drift
from the labels it selects.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llmgen.catalog import names
from llmgen.plan import routing

if TYPE_CHECKING:
    from llmgen.catalog.model import Environment, Model
    from llmgen.plan.build import ClusterPlan, Placement

ISTIO_SYSTEM = "istio-system"  # istiod's namespace and Istio's root config namespace
INGRESS_NAMESPACE = "istio-ingress"
FLUX_NAMESPACE = "flux-system"
MONITORING_NAMESPACE = "monitoring"

#: Platform add-on key of Istio's `gateway` chart (both gateways use it).
GATEWAY_ADDON = "istio-gateway"
ISTIOD_ADDON = "istiod"

# Helm release names decide the gateways' Deployment, Service and
# ServiceAccount names (the chart names them after the release).
INGRESS_RELEASE = "istio-ingressgateway"
EASTWEST_RELEASE = "istio-eastwestgateway"
INGRESS_LABELS = {"app": INGRESS_RELEASE, "istio": "ingressgateway"}
EASTWEST_LABELS = {"app": EASTWEST_RELEASE, "istio": "eastwestgateway"}
ISTIOD_LABELS = {"app": "istiod"}

# Gateway pods: at least two, spread over zones, so one node or zone loss
# does not take a region's entry point down; CPU-scaled (TLS and the WAF).
# The edge gateways (gateway.py) and the inference gateways
# (inferencegateway.py) both use it.
GATEWAY_REPLICAS = (2, 10)
GATEWAY_NAME = "llm-gateway"
GATEWAY_TLS_SECRET = "llm-gateway-tls"
CROSS_NETWORK_GATEWAY = "cross-network-gateway"
VIRTUAL_SERVICE = "llm-api"

#: the header clients set to pick a model by its served name
MODEL_HEADER = "x-llmgen-model"
#: the pod label telling a model's stable Deployment from its canary
TRACK_LABEL = "llmgen.io/track"
#: vLLM's liveness/readiness endpoint
HEALTH_PATH = "/health"
VLLM_PORT = 8000
# Istio sidecar ports Prometheus may scrape: merged app+proxy metrics, Envoy stats.
SIDECAR_METRICS_PORTS = (15020, 15090)
ISTIOD_XDS_PORT = 15012


def service_host(model: str) -> str:
    """The model Service's mesh-wide name (the same in every cluster: namespace sameness)."""
    return f"{model}.{names.model_namespace(model)}.svc.cluster.local"


def trust_domain(cp: ClusterPlan) -> str:
    """The mesh's SPIFFE trust domain: one per environment, `<environment>.<platform trustDomain>`.

    Each environment is its own mesh with its own root; a distinct trust
    domain keeps a workload of one environment (or of any default Istio
    install, `cluster.local`) from matching another's principals even if a
    root were ever shared. A cluster in no environment keeps the platform's.
    """
    base = cp.platform.trust_domain
    return f"{cp.env_name}.{base}" if cp.environment is not None else base


def principal(trust_domain: str, namespace: str, service_account: str) -> str:
    """An Istio peer principal (the SPIFFE identity without its scheme)."""
    return f"{trust_domain}/ns/{namespace}/sa/{service_account}"


@dataclass(frozen=True)
class MeshView:
    """One cluster seen from the mesh: its plan plus every placement of its environment.

    The gateway of each cluster routes every model of the environment (a
    model not placed locally is reached through the east-west gateway), so
    routing needs the environment's placements, not only the cluster's own.
    """

    cp: ClusterPlan
    environment: Environment
    env_placements: tuple[Placement, ...]

    @functools.cached_property
    def env_hash(self) -> str:
        """Provenance of files that depend on every model of the environment (routes)."""
        hashes = sorted({self.cp.input_hash, *(p.input_hash for p in self.env_placements)})
        return hashlib.sha256("".join(hashes).encode()).hexdigest()[:16]

    def model_hash(self, model: str) -> str:
        """Provenance of one model's routing files: they read the cluster and that
        model's placements in the environment (failover only goes to sites of
        the same model), so another model's edit does not re-stamp them."""
        hashes = sorted({self.cp.input_hash, *(p.input_hash for p in self.placements_of(model))})
        return hashlib.sha256("".join(hashes).encode()).hexdigest()[:16]

    @property
    def ingress_principal(self) -> str:
        return principal(trust_domain(self.cp), INGRESS_NAMESPACE, INGRESS_RELEASE)

    def model_labels(self, model: Model) -> dict[str, str]:
        """What every resource in a model's folder carries (Placement.labels),
        also on a cluster that only routes the model."""
        return {
            **self.cp.labels,
            "app.kubernetes.io/name": model.name,
            "llmgen.io/model": model.name,
            "llmgen.io/team": model.team,
            "llmgen.io/cost-center": model.cost_center,
        }

    def served_models(self) -> list[Model]:
        """Models with replicas somewhere in the environment, in catalog order."""
        by_name = {p.model.name: p.model for p in self.env_placements}
        return [by_name[d.name] for d in self.environment.models if d.name in by_name]

    # A gateway asks these once per model; computed once per view (the
    # environment's placements are thousands in a large catalog).
    @functools.cached_property
    def _sites(self) -> list[routing.Site]:
        return routing.sites(self.env_placements)

    @functools.cached_property
    def _by_model(self) -> dict[str, list[Placement]]:
        out: dict[str, list[Placement]] = {}
        for p in self.env_placements:
            out.setdefault(p.model.name, []).append(p)
        return out

    def sites(self) -> list[routing.Site]:
        return self._sites

    def placements_of(self, model: str) -> list[Placement]:
        return self._by_model.get(model, [])

    def has_canary(self, model: str) -> bool:
        return any(p.has_canary for p in self.placements_of(model))

    def canary_weight(self, model: str) -> int | None:
        if not self.has_canary(model):
            return None
        dep = next(d for d in self.environment.models if d.name == model)
        return dep.canary.weight if dep.canary else None


def view(cp: ClusterPlan, env_placements: Iterable[Placement] | None = None) -> MeshView | None:
    """The mesh view of `cp`; None for a cluster in no environment (nothing to route).

    `env_placements` defaults to the cluster's own placements: then the
    gateway routes only the models placed in its own cluster.
    """
    if cp.environment is None:
        return None
    env = cp.environment
    found = tuple(cp.placements if env_placements is None else env_placements)
    return MeshView(cp, env, tuple(p for p in found if p.environment.name == env.name))
