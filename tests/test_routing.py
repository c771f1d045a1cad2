"""Routing decisions (llmgen.routing): failover targets, canary weights, timeouts, DNS roles."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmgen.catalog.model import Catalog, Environment
from llmgen.plan import routing
from llmgen.plan.routing import Site
from llmgen.render.pipeline import checked_catalog


@pytest.fixture(scope="module")
def catalog(repo_root: Path) -> Catalog:
    cat, _ = checked_catalog(repo_root)
    return cat


# ------------------------------------------------------------------ failover

REGIONS = [
    ("aws", "us-east-1"),
    ("aws", "us-west-2"),
    ("aws", "eu-west-1"),
    ("gcp", "us-central1"),
    ("gcp", "europe-west4"),
    ("gcp", "asia-northeast1"),
]


@st.composite
def site_sets(draw: st.DrawFn) -> tuple[Site, list[Site]]:
    """An origin and candidate sites varying in every field failover looks at."""
    n = draw(st.integers(min_value=1, max_value=8))
    candidates = []
    for i in range(n):
        cloud, region = draw(st.sampled_from(REGIONS))
        candidates.append(
            Site(
                environment=draw(st.sampled_from(["prod", "staging"])),
                model=draw(st.sampled_from(["llama", "qwen"])),
                track=draw(st.sampled_from([routing.STABLE, routing.CANARY])),
                cluster=f"c{draw(st.integers(min_value=0, max_value=5))}-{i % 3}",
                cloud=cloud,
                region=region,
                served_name=draw(st.sampled_from(["llama-3", "llama-3-alt"])),
                revision=draw(st.sampled_from(["a" * 40, "b" * 40])),
            )
        )
    origin = draw(st.sampled_from(candidates))
    return origin, candidates


@given(site_sets())
def test_failover_targets_only_serve_the_same_revision_and_name(
    data: tuple[Site, list[Site]],
) -> None:
    origin, candidates = data
    targets = routing.failover_targets(origin, candidates)
    for t in targets:
        assert t.cluster != origin.cluster
        assert (t.environment, t.model, t.track) == (origin.environment, origin.model, origin.track)
        assert (t.served_name, t.revision) == (origin.served_name, origin.revision)
    # one target per cluster, and every eligible cluster is offered
    assert len({t.cluster for t in targets}) == len(targets)
    eligible = {
        c.cluster
        for c in candidates
        if c.cluster != origin.cluster and routing.same_service(origin, c)
    }
    assert {t.cluster for t in targets} == eligible


@given(site_sets())
def test_failover_prefers_region_then_continent_then_cloud(data: tuple[Site, list[Site]]) -> None:
    origin, candidates = data
    targets = routing.failover_targets(origin, candidates)
    keys = [
        (
            t.region != origin.region,
            routing.continent(t.region) != routing.continent(origin.region),
            t.cloud != origin.cloud,
            t.cluster,
        )
        for t in targets
    ]
    assert keys == sorted(keys)


def test_failover_excludes_a_cluster_on_another_revision() -> None:
    base = Site("prod", "llama", routing.STABLE, "use1", "aws", "us-east-1", "llama-3", "a" * 40)
    usw2 = replace(base, cluster="usw2", region="us-west-2")
    usc1_old = replace(base, cluster="usc1", cloud="gcp", region="us-central1", revision="b" * 40)
    euw4 = replace(base, cluster="euw4", cloud="gcp", region="europe-west4")
    renamed = replace(base, cluster="use2", region="us-east-2", served_name="llama-3-new")
    targets = routing.failover_targets(base, [base, usw2, usc1_old, euw4, renamed])
    assert [t.cluster for t in targets] == ["usw2", "euw4"]
    assert routing.locality_failover(base, targets) == [{"from": "us-east-1", "to": "us-west-2"}]


def test_locality_failover_skips_targets_in_the_same_region() -> None:
    base = Site("prod", "m", routing.STABLE, "a", "aws", "us-east-1", "m", "r")
    twin = replace(base, cluster="b")
    far = replace(base, cluster="c", region="eu-west-1")
    targets = routing.failover_targets(base, [twin, far])
    assert [t.cluster for t in targets] == ["b", "c"]
    assert routing.locality_failover(base, targets) == [{"from": "us-east-1", "to": "eu-west-1"}]
    assert routing.locality_failover(base, (twin,)) == []


@pytest.mark.parametrize(
    ("region", "continent"),
    [
        ("us-east-1", "na"),
        ("us-central1", "na"),
        ("northamerica-northeast1", "na"),
        ("europe-west4", "eu"),
        ("eu-central-1", "eu"),
        ("ap-southeast-2", "ap"),
        ("asia-northeast1", "ap"),
        ("southamerica-east1", "sa"),
    ],
)
def test_continent(region: str, continent: str) -> None:
    assert routing.continent(region) == continent


# ----------------------------------------------------------- weights, timing


@given(st.one_of(st.none(), st.integers(min_value=0, max_value=100)))
def test_canary_split_sums_to_100(weight: int | None) -> None:
    stable, canary = routing.canary_split(weight)
    assert stable + canary == 100
    assert canary == (weight or 0)


def test_route_timeouts_fit_streaming(catalog: Catalog) -> None:
    llama = catalog.models["llama-3-1-8b-instruct"]
    embed = catalog.models["bge-m3"]
    # 16384 tokens at 20 tokens/s is 820 s, rounded up to whole minutes
    assert routing.route_timeout_seconds(llama) == 840
    assert routing.route_timeout_seconds(embed) == routing.EMBED_TIMEOUT_SECONDS
    tiny = replace(llama, max_model_len=512)
    huge = replace(llama, max_model_len=1_000_000)
    assert routing.route_timeout_seconds(tiny) == routing.GENERATE_TIMEOUT_BOUNDS[0]
    assert routing.route_timeout_seconds(huge) == routing.GENERATE_TIMEOUT_BOUNDS[1]


def test_max_num_seqs_reads_the_engine_flag(catalog: Catalog) -> None:
    llama = catalog.models["llama-3-1-8b-instruct"]
    assert routing.max_num_seqs(llama) == routing.VLLM_DEFAULT_MAX_NUM_SEQS
    assert routing.max_num_seqs(replace(llama, extra_args=("--max-num-seqs=64",))) == 64
    assert routing.max_num_seqs(replace(llama, extra_args=("--max-num-seqs", "32"))) == 32


# ---------------------------------------------------------------------- DNS


def _records(
    catalog: Catalog, env: Environment, capable: set[str] | None = None
) -> dict[str, routing.DnsRecord]:
    clusters = [catalog.clusters[c] for c in env.clusters]
    return routing.dns_records(env, clusters, {"aws"} if capable is None else capable)


def _owners_are_consistent(records: dict[str, routing.DnsRecord]) -> None:
    """Per name: either exactly one plain record, or only policy records (>= 2)."""
    by_name: dict[str, list[routing.DnsRecord]] = {}
    for r in records.values():
        for h in r.hostnames:
            by_name.setdefault(h, []).append(r)
    for name, recs in by_name.items():
        plain = [r for r in recs if r.policy is None]
        assert len(plain) <= 1, name
        assert not (plain and len(recs) > 1), name
        if not plain:
            assert len(recs) >= 2, name
            assert len({r.set_identifier for r in recs}) == len(recs), name


def test_prod_dns_aws_joins_latency_policy_gcp_publishes_regional(catalog: Catalog) -> None:
    env = catalog.environments["prod"]
    records = _records(catalog, env)
    assert records["prod-aws-use1"] == routing.DnsRecord(
        "prod-aws-use1", ("llm.example.com",), "latency", "prod-aws-use1", "us-east-1"
    )
    assert records["prod-aws-usw2"].region == "us-west-2"
    assert records["prod-gcp-usc1"] == routing.DnsRecord(
        "prod-gcp-usc1", ("prod-gcp-usc1.llm.example.com",), None
    )
    _owners_are_consistent(records)


@pytest.mark.parametrize("policy", ["latency", "geo", "weighted", "failover"])
@pytest.mark.parametrize("capable", [set(), {"aws"}, {"gcp"}, {"aws", "gcp"}])
def test_dns_never_publishes_conflicting_records(
    catalog: Catalog, policy: str, capable: set[str]
) -> None:
    env = replace(catalog.environments["prod"], routing_policy=policy)
    records = _records(catalog, env, capable)
    _owners_are_consistent(records)
    # the shared name always has an owner
    assert any(env.domain in r.hostnames for r in records.values())
    if policy == "failover":
        roles = sorted(r.failover for r in records.values() if r.failover)
        assert roles in ([], ["PRIMARY", "SECONDARY"])
    if policy == "weighted":
        for r in records.values():
            if r.policy:
                assert r.weight == env.routing_weights[r.cluster]


def test_failover_dns_follows_the_environment_order(catalog: Catalog) -> None:
    env = catalog.environments["prod"]
    env = replace(env, routing_policy="failover", clusters=tuple(reversed(env.clusters)))
    records = _records(catalog, env, {"aws", "gcp"})
    assert records["prod-gcp-euw4"].failover == "PRIMARY"
    assert records["prod-gcp-usc1"].failover == "SECONDARY"
    assert records["prod-aws-usw2"].hostnames == ("prod-aws-usw2.llm.example.com",)


def test_a_lone_policy_cluster_publishes_a_plain_record(catalog: Catalog) -> None:
    dev = catalog.environments["dev"]  # one AWS cluster, failover policy
    records = _records(catalog, dev)
    (only,) = records.values()
    assert only.policy is None
    assert only.hostnames == ("llm.dev.example.com", "dev-aws-use2.llm.dev.example.com")


def test_with_one_dns_authority_every_active_cluster_joins(catalog: Catalog) -> None:
    """prod names Route 53 (spec.dns): all four clusters are in llm.example.com (issue 14)."""
    env = catalog.environments["prod"]
    assert env.dns is not None and env.dns.provider == "route53"
    records = _records(catalog, env, {"aws", "gcp"})
    assert {r.cluster for r in records.values() if r.policy == "latency"} == set(env.clusters)
    assert records["prod-gcp-usc1"].region == "us-east-2"  # Iowa -> Ohio
    assert records["prod-gcp-euw4"].region == "eu-central-1"  # Netherlands -> Frankfurt
    regions = [r.region for r in records.values()]
    assert len(set(regions)) == len(regions)  # one latency record per region and name
    _owners_are_consistent(records)
    # A suspended cluster is out by design: its regional name only.
    stopped = replace(env, suspended_clusters=("prod-gcp-euw4",))
    records = _records(catalog, stopped, {"aws", "gcp"})
    assert records["prod-gcp-euw4"].hostnames == ("prod-gcp-euw4.llm.example.com",)
    assert records["prod-gcp-euw4"].policy is None
