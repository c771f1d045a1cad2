"""Long requests survive the path, and the east-west gateway stays private (issue 14, point 7).

What the controllers do with the rendered values, at the pinned versions:

- AWS NLB: a TCP listener drops a flow after 350 s without packets unless
  its `tcp.idle_timeout.seconds` attribute says otherwise (60-6000 s, AWS ELB
  "Update the TCP idle timeout"). aws-load-balancer-controller v2.14.0 sets
  a listener's attributes from the Service annotation
  `service.beta.kubernetes.io/aws-load-balancer-listener-attributes.<protocol>-<port>`
  (pkg/service/model_build_listener.go `buildListenerAttributes`; the
  listener protocol is TCP without a TLS certificate annotation).
- Istio gateway chart 1.27.3 (values and templates/hpa.yaml rechecked at the
  pinned 1.28.0): `terminationGracePeriodSeconds` (default 30),
  `podAnnotations` (merged over its defaults), `env`, and
  `autoscaling.autoscaleBehavior` (templates/hpa.yaml `behavior`); pilot-agent
  drains for `terminationDrainDuration` (ProxyConfig, default 5 s) and with
  EXIT_ON_ZERO_ACTIVE_CONNECTIONS exits once the last connection closes.
- istio-discovery chart 1.27.3 and 1.28.0: `pilot.*` is copied to the top level
  (templates/zzy_descope_legacy.yaml); the HPA's minReplicas is
  `autoscaleMin` (templates/autoscale.yaml), default 1.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from llmgen.plan import routing
from llmgen.plan.build import Plan

NLB_DEFAULT_IDLE = 350
LISTENER = "service.beta.kubernetes.io/aws-load-balancer-listener-attributes"


def _releases(files: dict[str, bytes], cluster: str) -> dict[str, dict[str, Any]]:
    out = {}
    for path, body in files.items():
        if path.startswith(f"generated/clusters/{cluster}/infrastructure/"):
            for d in yaml.safe_load_all(body):
                if d and d["kind"] == "HelmRelease":
                    out[d["metadata"]["name"]] = d["spec"].get("values") or {}
    return out


def _longest(plan: Plan, cluster: str) -> int:
    cp = plan.clusters[cluster]
    return max(routing.route_timeout_seconds(p.model) for p in cp.environment_placements)


def nlb_idle_timeout(annotations: dict[str, str], port: int) -> int:
    """The idle timeout LBC v2.14 gives the TCP listener on `port`."""
    raw = annotations.get(f"{LISTENER}.TCP-{port}")
    if raw is None:
        return NLB_DEFAULT_IDLE
    attrs = dict(kv.split("=", 1) for kv in raw.split(","))
    seconds = int(attrs.get("tcp.idle_timeout.seconds", NLB_DEFAULT_IDLE))
    assert 60 <= seconds <= 6000, "AWS refuses an idle timeout outside 60-6000 s"
    return seconds


def test_the_aws_nlb_keeps_idle_flows_as_long_as_the_longest_route(
    plan: Plan, files: dict[str, bytes]
) -> None:
    cluster = "prod-aws-use1"
    longest = _longest(plan, cluster)
    assert longest > NLB_DEFAULT_IDLE  # the case the review found: 840 s and 1680 s routes
    rels = _releases(files, cluster)
    ingress = rels["istio-ingressgateway"]["service"]["annotations"]
    assert nlb_idle_timeout(ingress, 443) >= longest
    eastwest = rels["istio-eastwestgateway"]["service"]["annotations"]
    assert nlb_idle_timeout(eastwest, 15443) >= longest


def test_gateways_drain_as_long_as_the_routes_allow(plan: Plan, files: dict[str, bytes]) -> None:
    for cluster in ("prod-aws-use1", "prod-gcp-usc1"):
        longest = _longest(plan, cluster)
        for name, values in _releases(files, cluster).items():
            if name not in ("istio-ingressgateway", "istio-eastwestgateway"):
                continue
            assert values["terminationGracePeriodSeconds"] >= longest, name
            proxy = json.loads(values["podAnnotations"]["proxy.istio.io/config"])
            drain = int(proxy["terminationDrainDuration"].removesuffix("s"))
            assert longest <= drain < values["terminationGracePeriodSeconds"], name
            assert values["env"]["EXIT_ON_ZERO_ACTIVE_CONNECTIONS"] == "true"
            behaviour = values["autoscaling"]["autoscaleBehavior"]["scaleDown"]
            assert behaviour["stabilizationWindowSeconds"] >= 300


def test_east_west_gateways_are_not_on_the_internet(files: dict[str, bytes]) -> None:
    aws = _releases(files, "prod-aws-use1")["istio-eastwestgateway"]["service"]["annotations"]
    assert aws["service.beta.kubernetes.io/aws-load-balancer-scheme"] == "internal"
    gcp = _releases(files, "prod-gcp-usc1")["istio-eastwestgateway"]["service"]["annotations"]
    assert gcp["networking.gke.io/load-balancer-type"] == "Internal"
    # The ingress gateway stays public.
    ingress = _releases(files, "prod-aws-use1")["istio-ingressgateway"]["service"]["annotations"]
    assert ingress["service.beta.kubernetes.io/aws-load-balancer-scheme"] == "internet-facing"


def test_istiod_runs_two_replicas(files: dict[str, bytes]) -> None:
    for cluster in ("prod-aws-use1", "prod-gcp-usc1"):
        values = _releases(files, cluster)["istiod"]
        effective = {**values, **values.get("pilot", {})}  # zzy_descope_legacy.yaml
        assert effective.get("autoscaleMin", 1) >= 2
        assert effective.get("replicaCount", 1) >= 2


TG_ATTRIBUTES = "service.beta.kubernetes.io/aws-load-balancer-target-group-attributes"


def preserves_client_ip(annotations: dict[str, str]) -> bool:
    """LBC v2.14 `buildPreserveClientIPFlag` (pkg/service/model_build_target_group.go):
    the `preserve_client_ip.enabled` target group attribute if given, else on
    for `instance` targets and off for `ip` targets."""
    raw = annotations.get(TG_ATTRIBUTES, "")
    attrs = dict(kv.split("=", 1) for kv in raw.split(",") if kv)
    if "preserve_client_ip.enabled" in attrs:
        return attrs["preserve_client_ip.enabled"].lower() == "true"
    target = annotations.get("service.beta.kubernetes.io/aws-load-balancer-nlb-target-type")
    return target == "instance"


def test_the_ingress_gateway_sees_client_ips(files: dict[str, bytes]) -> None:
    """The review's D18: NLB `ip` targets lose the client address unless the
    target group preserves it; the WAF, access logs and policies need it. GKE's
    passthrough load balancer keeps it with externalTrafficPolicy Local."""
    aws = _releases(files, "prod-aws-use1")
    ingress = aws["istio-ingressgateway"]["service"]
    assert (
        ingress["annotations"]["service.beta.kubernetes.io/aws-load-balancer-nlb-target-type"]
        == "ip"
    )
    assert preserves_client_ip(ingress["annotations"])
    assert not preserves_client_ip(aws["istio-eastwestgateway"]["service"]["annotations"])
    gcp = _releases(files, "prod-gcp-usc1")["istio-ingressgateway"]["service"]
    assert gcp["externalTrafficPolicy"] == "Local"
