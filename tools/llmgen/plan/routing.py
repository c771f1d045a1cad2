"""Routing decisions of the gateway and mesh, as pure functions of the plan.

Nothing here renders text. The mesh concerns (`concerns/mesh.py` and its
parts) call these to decide:

- `Site` / `sites`: what each cluster of an environment serves, per model and
  track (stable or canary), with the served name and revision that identify
  it;
- `failover_targets`: where a cluster's traffic for one model track may fail
  over to: only clusters of the same environment serving the same revision
  under the same served name, nearest first;
- `canary_split`: the stable/canary weights (always summing to 100);
- `route_timeout_seconds`, `max_concurrency`: timeouts and circuit-breaker
  sizes fit for long streaming generations;
- `dns_records`: which gateway publishes which DNS name with which routing
  role for the environment's `routing.policy`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llmgen.catalog.dnsregions import aws_region

if TYPE_CHECKING:
    from llmgen.catalog.model import Cluster, Environment, Model
    from llmgen.plan.build import Placement

STABLE = "stable"
CANARY = "canary"

# vLLM's default `--max-num-seqs`: sequences one replica decodes at once. The
# gateway's circuit breaker is sized from it (see `max_concurrency`).
VLLM_DEFAULT_MAX_NUM_SEQS = 256
# Worst case the route timeout must cover: a full context window of output at
# this decode rate. Slower than any healthy replica, so a timeout means stuck.
SLOWEST_DECODE_TOKENS_PER_SECOND = 20
GENERATE_TIMEOUT_BOUNDS = (300, 3600)
EMBED_TIMEOUT_SECONDS = 60

# Region prefixes -> continent, for AWS (`us-east-1`) and GCP (`us-central1`,
# `europe-west4`) names alike. Failover prefers the same continent: lower
# latency, and data stays in its legal area where it can.
_CONTINENTS = {
    "us": "na", "ca": "na", "mx": "na", "northamerica": "na",
    "sa": "sa", "southamerica": "sa",
    "eu": "eu", "europe": "eu",
    "ap": "ap", "asia": "ap", "australia": "ap",
    "me": "me", "il": "me",
    "af": "af", "africa": "af",
}  # fmt: skip


def continent(region: str) -> str:
    """`us-east-1` and `us-central1` -> `na`; `europe-west4` -> `eu`; unknown: the prefix."""
    head = region.split("-", 1)[0]
    return _CONTINENTS.get(head, head)


@dataclass(frozen=True, order=True)
class Site:
    """One track of one model served (or wanted) in one cluster."""

    environment: str
    model: str
    track: str
    cluster: str
    cloud: str
    region: str
    served_name: str
    revision: str


def sites(placements: Iterable[Placement]) -> list[Site]:
    """Every model track each placement serves: stable, plus canary where it runs."""
    out: list[Site] = []
    for p in placements:
        out.append(_site(p.environment, p.cluster, p.model, STABLE, p.model.revision))
        canary = p.deployment.canary
        if canary is not None and p.has_canary:
            # A canary of only a new image serves the stable revision.
            revision = canary.revision or p.model.revision
            out.append(_site(p.environment, p.cluster, p.model, CANARY, revision))
    return sorted(out)


def wanted(environment: Environment, cluster: Cluster, model: Model, track: str) -> Site:
    """The site a gateway in `cluster` wants for `model`'s `track` (served there or not)."""
    revision = model.revision
    dep = next((d for d in environment.models if d.name == model.name), None)
    if track == CANARY and dep is not None and dep.canary is not None:
        revision = dep.canary.revision or model.revision
    return _site(environment, cluster, model, track, revision)


def _site(env: Environment, cluster: Cluster, model: Model, track: str, revision: str) -> Site:
    return Site(
        environment=env.name,
        model=model.name,
        track=track,
        cluster=cluster.name,
        cloud=cluster.cloud,
        region=cluster.region,
        served_name=model.served_model_name,
        revision=revision,
    )


def same_service(a: Site, b: Site) -> bool:
    """Whether `b` can answer what was asked of `a`: same model, track, name and revision."""
    return (
        a.environment == b.environment
        and a.model == b.model
        and a.track == b.track
        and a.served_name == b.served_name
        and a.revision == b.revision
    )


def failover_targets(origin: Site, candidates: Iterable[Site]) -> tuple[Site, ...]:
    """The other clusters `origin`'s traffic may fail over to, most preferred first.

    Only sites of the same environment serving the same model track under the
    same served name and revision qualify (a different revision answers
    differently; a different served name answers 404). Order: same region,
    then same continent, then same cloud (cheaper egress, one LB behaviour),
    then cluster name, so the result is deterministic. One site per cluster.
    """
    seen: set[str] = set()
    out: list[Site] = []
    eligible = (c for c in candidates if c.cluster != origin.cluster and same_service(origin, c))
    for c in sorted(eligible, key=lambda c: _preference(origin, c)):
        if c.cluster not in seen:
            seen.add(c.cluster)
            out.append(c)
    return tuple(out)


def _preference(origin: Site, c: Site) -> tuple[bool, bool, bool, str]:
    return (
        c.region != origin.region,
        continent(c.region) != continent(origin.region),
        c.cloud != origin.cloud,
        c.cluster,
    )


def locality_failover(origin: Site, targets: Sequence[Site]) -> list[dict[str, str]]:
    """Istio `localityLbSetting.failover` for `origin`: its region to the first target's.

    Istio honours one `to` per `from` region (Envoy priority: own locality,
    then the `to` region, then the rest), so only the best target is named.
    """
    for t in targets:
        if t.region != origin.region:
            return [{"from": origin.region, "to": t.region}]
    return []


def canary_split(weight: int | None) -> tuple[int, int]:
    """(stable, canary) percentages; no canary means (100, 0). Always sums to 100."""
    if weight is None:
        return 100, 0
    w = min(max(int(weight), 0), 100)
    return 100 - w, w


def route_timeout_seconds(model: Model) -> int:
    """How long one request may take end to end, including a streamed answer.

    Embeddings are quick. A generation may stream a whole context window; at
    the slowest healthy decode rate that bounds the answer (rounded up to a
    whole minute), clamped so a
    small context still gets minutes and a huge one cannot hold a
    connection for hours.
    """
    if model.task == "embed":
        return EMBED_TIMEOUT_SECONDS
    low, high = GENERATE_TIMEOUT_BOUNDS
    seconds = math.ceil(model.max_model_len / SLOWEST_DECODE_TOKENS_PER_SECOND / 60) * 60
    return min(max(seconds, low), high)


def max_num_seqs(model: Model) -> int:
    """The `--max-num-seqs` the model's engine runs with (vLLM's default unless set)."""
    args = list(model.extra_args)
    for i, arg in enumerate(args):
        if arg.startswith("--max-num-seqs="):
            value = arg.partition("=")[2]
        elif arg == "--max-num-seqs" and i + 1 < len(args):
            value = args[i + 1]
        else:
            continue
        if value.isdigit() and int(value) > 0:
            return int(value)
    return VLLM_DEFAULT_MAX_NUM_SEQS


def max_concurrency(model: Model, placements: Iterable[Placement]) -> int:
    """Requests the environment's replicas of `model` can decode at once, at their maximum.

    The gateway's circuit breakers open beyond this (shared over its pods,
    render/concerns/trafficpolicy.py): past it, requests only queue inside
    vLLM and time out, so shedding them early with a 503 is kinder to clients
    and to the GPUs.
    """
    replicas = sum(p.replicas_max_total for p in placements if p.model.name == model.name)
    return max(replicas, 1) * max_num_seqs(model)


# ------------------------------------------------------------------ global DNS


def active_clusters(environment: Environment) -> list[str]:
    """The environment's clusters that serve (`suspendedClusters` are out by design)."""
    if environment.suspended:
        return []
    return [c for c in environment.clusters if c not in environment.suspended_clusters]


@dataclass(frozen=True)
class DnsRecord:
    """What one cluster's ingress gateway publishes through ExternalDNS.

    `hostnames` are the names on the gateway Service; `policy` is the
    environment's routing policy when this record joins the shared policy
    record set, else None (a plain record). `weight` and `failover` carry
    the record's role under the weighted and failover policies.
    """

    cluster: str
    hostnames: tuple[str, ...]
    policy: str | None
    set_identifier: str | None = None
    region: str | None = None
    weight: int | None = None
    failover: str | None = None  # PRIMARY | SECONDARY
    #: the Route 53 health check of this record (spec.dns.healthChecks)
    health_check: str | None = None


def regional_hostname(cluster: str, domain: str) -> str:
    """The per-cluster name of a gateway: `<cluster>.<domain>`."""
    return f"{cluster}.{domain}"


def dns_records(
    environment: Environment,
    clusters: Sequence[Cluster],
    policy_capable: Iterable[str],
) -> dict[str, DnsRecord]:
    """Per cluster of `environment`, the DNS record its ingress gateway publishes.

    `policy_capable` names the clouds whose clusters write into a DNS service
    with routing-policy record sets: with `spec.dns` (Route 53 the one
    authority) every cloud's; without it, only clouds whose own DNS has them.
    Their active gateways join the environment's domain as a policy record set;
    a suspended cluster keeps its regional name only. Latency and geo records
    name `aws_region(cluster)` (validate refuses two clusters on one region
    under latency: Route 53 keeps one latency record per region and name).
    Every other gateway publishes its plain regional name only, because two
    plain records of the same name from different clusters fight over
    ExternalDNS ownership and one silently wins. With no policy-capable cluster
    at all, the first cluster in the environment's order owns the domain as a
    plain record; so does a lone policy-capable one (a policy of one record
    chooses nothing).

    A policy record carries only the domain (ExternalDNS applies a Service's
    set identifier to each of its hostnames).

    Failover: the first two policy-capable clusters in the environment's
    order are PRIMARY and SECONDARY (Route 53 allows exactly one of each per
    name); the rest keep their regional names.
    """
    capable = set(policy_capable)
    by_name = {c.name: c for c in clusters}
    ordered = [by_name[n] for n in environment.clusters if n in by_name]
    domain = environment.domain
    active = set(active_clusters(environment))
    joined = [c for c in ordered if c.cloud in capable and c.name in active]
    capable_first = joined[0] if joined else None
    policy = environment.routing_policy
    if policy == "failover":
        joined = joined[:2]
    if len(joined) == 1:
        joined = []  # a policy needs two records to choose between; one is a plain record
    out: dict[str, DnsRecord] = {}
    for c in ordered:
        regional = regional_hostname(c.name, domain)
        if c in joined:
            role = ("PRIMARY", "SECONDARY")[joined.index(c)] if policy == "failover" else None
            out[c.name] = DnsRecord(
                cluster=c.name,
                # only the shared name: ExternalDNS gives every hostname of a
                # Service the same set identifier and policy
                hostnames=(domain,),
                policy=policy,
                set_identifier=c.name,
                region=aws_region(c),
                weight=environment.routing_weights.get(c.name, 0) if policy == "weighted" else None,
                failover=role,
                health_check=environment.dns.health_checks.get(c.name)
                if environment.dns is not None
                else None,
            )
        elif not joined and c is (capable_first or ordered[0]):
            out[c.name] = DnsRecord(c.name, (domain, regional), None)
        else:
            out[c.name] = DnsRecord(c.name, (regional,), None)
    return out
