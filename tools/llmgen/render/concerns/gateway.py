"""Ingress and east-west gateways: Helm releases, the Istio Gateway, TLS, DNS and WAF.

Into `infrastructure/istio/istio-gateway/`: the Istio `gateway` chart's
HelmRepository and two releases of it: the ingress gateway (public
LoadBalancer, cloud load-balancer annotations, ExternalDNS annotations for the
environment's routing policy) in `istio-ingress`, and the east-west gateway
(this cluster's Istio network's entry for the other clusters) in
`istio-system`.

Into `infrastructure/configs/gateway/`: the Istio `Gateway` for the
environment's names (HTTP redirected to HTTPS), its cert-manager
`Certificate`, and the Coraza WAF `WasmPlugin` where the environment enables it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from llmgen.clouds import get_provider
from llmgen.clouds.base import CloudProvider
from llmgen.plan import routing
from llmgen.render.concerns import addons, istio
from llmgen.render.concerns.istio import MeshView
from llmgen.render.types import PRUNE_DISABLED, Output, file_name

CONTROLLERS = f"infrastructure/istio/{istio.GATEWAY_ADDON}"
CONFIGS = "infrastructure/configs/gateway"
# The certificate is issued from outside (ACME): its own layer, nothing waits on it.
IDENTITY = "infrastructure/mesh-identity/gateway"

HELM_INTERVAL = "1h"
# ExternalDNS publishes the gateway from its Service (which carries the
# routing-policy annotations); a Gateway resource read by its istio-gateway
# source would add a plain record of the same name, which Route 53 refuses
# beside policy records. Any controller value but `dns-controller` skips it.
GATEWAY_ANNOTATIONS = {"external-dns.alpha.kubernetes.io/controller": "none"}
HELM_TIMEOUT = "10m"

# Coraza proxy-wasm v0.6.0 with the OWASP Core Rule Set v4 compiled in,
# pinned by digest: a tag can move, and the gateway would run whatever it
# points at next. Bump deliberately (`crane digest <image>:<tag>`).
CORAZA_IMAGE = (
    "oci://ghcr.io/corazawaf/coraza-proxy-wasm"
    "@sha256:d66f944831428ea27039207fa4019bea55f9ea0a876d7b0dc8cc7c9e385fa4b1"
)
# Order matters: the recommended config sets DetectionOnly and response body
# inspection, so the overrides come after it. Response bodies stay
# uninspected: inspecting them buffers the whole answer, which turns a token
# stream into one late blob. Request bodies are parsed as JSON (Coraza's JSON
# body processor names each value `json.<path>`, array items by index:
# `json.messages.0.content`).
SEC_RULE_ENGINE = {"block": "On", "detect": "DetectionOnly"}
FAIL_STRATEGY = {"closed": "FAIL_CLOSE", "open": "FAIL_OPEN"}
#: Prompt text: chat messages (a string or parts), completion prompts, embedding input.
PROMPT_ARGS = r"!ARGS:/^json\.(messages\.[0-9]+\.content|prompt|input)/"
#: Core Rule Set categories written for web forms: a prompt about SQL, shell,
#: HTML or PHP code is ordinary text to a model, not an attack on it.
PROMPT_EXEMPT_TAGS = (
    "attack-sqli",
    "attack-xss",
    "attack-rce",
    "attack-injection-php",
    "attack-injection-generic",
    "attack-lfi",
    "attack-rfi",
)


def coraza_directives(mode: str) -> list[str]:
    """The directives for `gateway.waf.mode`, prompt fields out of the form-attack rules.

    SecRuleUpdateTargetByTag edits rules already loaded (Coraza
    internal/seclang/directives.go walks `WAF.Rules`), so it follows the
    Include of the rule set; its target takes no spaces (two fields).
    """
    return [
        "Include @recommended-conf",
        f"SecRuleEngine {SEC_RULE_ENGINE[mode]}",
        "SecResponseBodyAccess Off",
        "Include @crs-setup-conf",
        "Include @owasp_crs/*.conf",
        *(f"SecRuleUpdateTargetByTag {tag} {PROMPT_ARGS}" for tag in PROMPT_EXEMPT_TAGS),
    ]


GATEWAY_REPLICAS = istio.GATEWAY_REPLICAS
GATEWAY_RESOURCES = {
    "requests": {"cpu": "500m", "memory": "512Mi"},
    "limits": {"memory": "1Gi"},
}


# Draining: a gateway pod told to stop keeps serving its in-flight requests
# for as long as the longest route allows (Istio's default drain is 5 s of a
# 30 s grace period: every longer stream on a scaled-down pod was cut).
# EXIT_ON_ZERO_ACTIVE_CONNECTIONS (pilot-agent, Istio 1.27; still registered at
# 1.28.0, pilot/cmd/pilot-agent/options/options.go) lets it exit as
# soon as the last connection closes instead of always waiting the full drain.
DRAIN_MARGIN_SECONDS = 30
#: HPA scale-down waits this long on lower load before removing a pod.
SCALE_DOWN_WINDOW_SECONDS = 600
#: A route timeout when the environment routes no model yet.
DEFAULT_ROUTE_SECONDS = 60


def longest_route_seconds(mv: MeshView) -> int:
    """The longest route timeout this gateway serves (`routing.route_timeout_seconds`)."""
    return max(
        (routing.route_timeout_seconds(m) for m in mv.served_models()),
        default=DEFAULT_ROUTE_SECONDS,
    )


def _drain_values(seconds: int) -> dict[str, Any]:
    return {
        "terminationGracePeriodSeconds": seconds + DRAIN_MARGIN_SECONDS,
        "podAnnotations": {
            "proxy.istio.io/config": json.dumps(
                {"terminationDrainDuration": f"{seconds}s"}, separators=(",", ":")
            )
        },
        "env": {"EXIT_ON_ZERO_ACTIVE_CONNECTIONS": "true"},
    }


def _spread(labels: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": dict(labels)},
        }
    ]


def _common_values(labels: dict[str, str], drain_seconds: int) -> dict[str, Any]:
    low, high = GATEWAY_REPLICAS
    return {
        "labels": dict(labels),
        **_drain_values(drain_seconds),
        "autoscaling": {
            "enabled": True,
            "minReplicas": low,
            "maxReplicas": high,
            "targetCPUUtilizationPercentage": 70,
            "autoscaleBehavior": {
                "scaleDown": {"stabilizationWindowSeconds": SCALE_DOWN_WINDOW_SECONDS}
            },
        },
        # From 1.28.0 the gateway chart renders this PDB only when autoscaling's
        # minReplicas is above 1 (templates/poddisruptionbudget.yaml): it is 2.
        "podDisruptionBudget": {"minAvailable": 1},
        "resources": GATEWAY_RESOURCES,
        "topologySpreadConstraints": _spread(labels),
        # The chart's default drops the seccomp profile, which Pod Security
        # `restricted` (istio-system, istio-ingress) requires; the sysctl lets
        # the non-root proxy bind 80 and 443.
        "securityContext": {
            "seccompProfile": {"type": "RuntimeDefault"},
            "sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}],
        },
    }


def dns_record(mv: MeshView) -> routing.DnsRecord:
    """The DNS record this cluster's ingress gateway publishes."""
    peers = mv.cp.peers or (mv.cp.cluster,)
    if mv.environment.dns is not None:
        capable = {c.cloud for c in peers}  # every cluster writes to the one authority
    else:
        capable = {c.cloud for c in peers if get_provider(c.cloud).dns_routing_policies}
    return routing.dns_records(mv.environment, peers, capable)[mv.cp.name]


def dns_authority(mv: MeshView) -> CloudProvider:
    """The provider whose DNS service holds the environment's records."""
    if mv.environment.dns is not None and mv.environment.dns.provider == "route53":
        return get_provider("aws")
    return mv.cp.provider


def gateway_hosts(mv: MeshView) -> list[str]:
    """The names this cluster's gateway answers for (and its certificate covers)."""
    return list(dns_record(mv).hostnames)


def ingress_values(mv: MeshView) -> dict[str, Any]:
    """Helm values of the ingress gateway release."""
    cluster = mv.cp.cluster
    provider = mv.cp.provider
    longest = longest_route_seconds(mv)
    annotations = {
        # Idle flows (a non-streaming completion) live as long as the longest route.
        **provider.load_balancer_annotations(
            cluster, idle_timeout_seconds=longest + DRAIN_MARGIN_SECONDS
        ),
        # Record annotations are the DNS authority's (Route 53 set identifiers
        # and policies on GKE too, when Route 53 is the environment's authority).
        **dns_authority(mv).external_dns_annotations(dns_record(mv)),
    }
    return {
        **_common_values(istio.INGRESS_LABELS, longest),
        "service": {
            "type": "LoadBalancer",
            # Keep client source IPs for the WAF, access logs and policies.
            "externalTrafficPolicy": "Local",
            "annotations": annotations,
        },
    }


def eastwest_values(mv: MeshView) -> dict[str, Any]:
    """Helm values of the east-west gateway: this cluster's Istio network entry.

    `networkGateway` makes the chart expose the mTLS passthrough port (15443)
    and label the Service with the network, which is how istiod in every
    other cluster discovers the gateway for endpoints on this network.
    """
    network = mv.cp.cluster.network
    labels = {**istio.EASTWEST_LABELS, "topology.istio.io/network": network}
    longest = longest_route_seconds(mv)
    return {
        **_common_values(labels, longest),
        "networkGateway": network,
        "service": {
            "type": "LoadBalancer",
            # Never on the internet: with networkGateway the chart publishes
            # 15443 and istiod's 15012/15017. The environment's networks reach
            # each other privately (VPC peering, VPN or Interconnect across
            # clouds; README "Bootstrap a cluster").
            "annotations": mv.cp.provider.load_balancer_annotations(
                mv.cp.cluster, internal=True, idle_timeout_seconds=longest + DRAIN_MARGIN_SECONDS
            ),
        },
    }


def controller_outputs(mv: MeshView) -> Iterator[Output]:
    cp = mv.cp
    addon = cp.platform.addons.get(istio.GATEWAY_ADDON)
    if addon is None:
        return
    labels = {**cp.labels, "app.kubernetes.io/component": addon.name}
    repository = addons.source_names(cp)[addon.name]
    if repository == addon.name:  # else another add-on's HelmRepository has its URL
        yield Output(
            f"{CONTROLLERS}/{file_name('HelmRepository', addon.name)}",
            "mesh/helmrepository.yaml.j2",
            {
                "name": addon.name,
                "namespace": istio.FLUX_NAMESPACE,
                "labels": labels,
                "url": addon.repository,
                "interval": HELM_INTERVAL,
                "oci": addon.repository.startswith("oci://"),
            },
            mv.env_hash,
        )
    yield Output(
        f"{CONTROLLERS}/{file_name('Namespace', istio.INGRESS_NAMESPACE)}",
        "mesh/namespace.yaml.j2",
        {
            "name": istio.INGRESS_NAMESPACE,
            # Gateways get the proxy through injection (pod label), and run
            # as non-root with only the (safe) unprivileged-port sysctl.
            "labels": {**cp.labels, "pod-security.kubernetes.io/enforce": "restricted"},
            "annotations": PRUNE_DISABLED,
        },
        mv.env_hash,
    )
    # Both gateways need istiod up: their pods get the proxy by injection.
    # Their LoadBalancer Services need the cloud's load balancer controller
    # where it is an add-on (its webhook claims Services as they are created).
    wanted = [istio.ISTIOD_ADDON, cp.provider.load_balancer_addon]
    depends = [
        {"name": name, "namespace": istio.FLUX_NAMESPACE}
        for name in wanted
        if name is not None and name in cp.platform.addons
    ]
    for release, namespace, values in (
        (istio.INGRESS_RELEASE, istio.INGRESS_NAMESPACE, ingress_values(mv)),
        (istio.EASTWEST_RELEASE, istio.ISTIO_SYSTEM, eastwest_values(mv)),
    ):
        yield Output(
            f"{CONTROLLERS}/{file_name('HelmRelease', release)}",
            "mesh/helmrelease-gateway.yaml.j2",
            {
                "name": release,
                "namespace": istio.FLUX_NAMESPACE,
                "labels": labels,
                "target_namespace": namespace,
                "interval": HELM_INTERVAL,
                "timeout": HELM_TIMEOUT,
                "chart": addon.chart,
                "version": addon.version,
                "repository": repository,
                "depends_on": depends,
                "values": values,
            },
            mv.env_hash,
        )


def gateway_servers(hosts: list[str]) -> list[dict[str, Any]]:
    """HTTPS with the cert-manager secret; plain HTTP only to redirect to HTTPS."""
    return [
        {
            "port": {"number": 443, "name": "https", "protocol": "HTTPS"},
            "hosts": hosts,
            "tls": {
                "mode": "SIMPLE",
                "credentialName": istio.GATEWAY_TLS_SECRET,
                "minProtocolVersion": "TLSV1_2",
            },
        },
        {
            "port": {"number": 80, "name": "http", "protocol": "HTTP"},
            "hosts": hosts,
            "tls": {"httpsRedirect": True},
        },
    ]


def waf_plugin_config(mode: str) -> dict[str, Any]:
    return {
        "directives_map": {"default": coraza_directives(mode)},
        "default_directives": "default",
    }


def certificate_names(mv: MeshView, hosts: list[str]) -> list[str]:
    """The gateway's names plus its cluster's regional name (review D20).

    Every cluster in the policy record set serves only the shared name, so
    each would order the same name set, and Let's Encrypt allows five
    certificates per exact set per week: a bring-up of four clusters and one
    rebuild exhaust it. The regional name makes each cluster's set its own
    (its DNS-01 TXT record is the cluster's own too); the shared name's
    challenge is still written by each cluster (docs: issue-14 answers).
    """
    regional = routing.regional_hostname(mv.cp.name, mv.environment.domain)
    return hosts if regional in hosts else [*hosts, regional]


def config_outputs(mv: MeshView) -> Iterator[Output]:
    cp = mv.cp
    labels = cp.labels
    hosts = gateway_hosts(mv)
    ns = istio.INGRESS_NAMESPACE
    yield Output(
        f"{CONFIGS}/{file_name('Gateway', istio.GATEWAY_NAME)}",
        "mesh/gateway.yaml.j2",
        {
            "name": istio.GATEWAY_NAME,
            "namespace": ns,
            "labels": labels,
            "annotations": GATEWAY_ANNOTATIONS,
            "selector": {"istio": istio.INGRESS_LABELS["istio"]},
            "servers": gateway_servers(hosts),
        },
        mv.env_hash,
    )
    yield Output(
        f"{IDENTITY}/{file_name('Certificate', istio.GATEWAY_NAME)}",
        "mesh/certificate.yaml.j2",
        {
            "name": istio.GATEWAY_NAME,
            "namespace": ns,
            "labels": labels,
            # The gateway reads credentialName from its own namespace.
            "secret_name": istio.GATEWAY_TLS_SECRET,
            "dns_names": certificate_names(mv, hosts),
            "issuer": mv.environment.tls_issuer,
        },
        mv.env_hash,
    )
    yield Output(
        f"{CONFIGS}/{file_name('Gateway', istio.CROSS_NETWORK_GATEWAY)}",
        "mesh/gateway.yaml.j2",
        {
            "name": istio.CROSS_NETWORK_GATEWAY,
            "namespace": istio.ISTIO_SYSTEM,
            "labels": labels,
            "annotations": GATEWAY_ANNOTATIONS,
            "selector": {"istio": istio.EASTWEST_LABELS["istio"]},
            # Other clusters' proxies reach this network's services by SNI,
            # mTLS end to end: the gateway never terminates their TLS.
            "servers": [
                {
                    "port": {"number": 15443, "name": "tls", "protocol": "TLS"},
                    "tls": {"mode": "AUTO_PASSTHROUGH"},
                    "hosts": ["*.local"],
                }
            ],
        },
        mv.env_hash,
    )
    if mv.environment.waf_enabled:
        yield Output(
            f"{CONFIGS}/{file_name('WasmPlugin', 'coraza-waf')}",
            "mesh/wasmplugin.yaml.j2",
            {
                "name": "coraza-waf",
                "namespace": ns,
                "labels": labels,
                "selector": {"istio": istio.INGRESS_LABELS["istio"]},
                "url": CORAZA_IMAGE,
                # Before authentication: attacks are refused before any
                # token work, and the WAF sees every request.
                "phase": "AUTHN",
                # gateway.waf.failurePolicy, default closed: running without
                # the WAF is a decision the catalog states, never a silent
                # fallback (mirror the image near the clusters).
                "fail_strategy": FAIL_STRATEGY[mv.environment.waf_failure_policy],
                "plugin_config": waf_plugin_config(mv.environment.waf_mode),
            },
            mv.env_hash,
        )
