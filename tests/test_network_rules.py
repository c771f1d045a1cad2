"""Catalog rules for networking (issue 14): located errors, exit 1, nothing rendered."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from llmgen.catalog.validate import validate
from llmgen.cli.app import app

REPO = Path(__file__).resolve().parents[1]


def edit(root: Path, rel: str, old: str, new: str) -> None:
    path = root / rel
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {rel}"
    path.write_text(text.replace(old, new))


def errors(root: Path) -> list[str]:
    return [str(d) for d in validate(root).diagnostics if d.is_error]


def test_an_aws_cluster_without_its_vpc_is_refused(scratch_repo: Path) -> None:
    rel = "catalog/clusters/prod-aws-use1.yaml"
    edit(scratch_repo, rel, ", vpcID: vpc-06f4e54c78aeeacf7}", "}")
    assert errors(scratch_repo) == [
        f"{rel}:13:8: spec.aws: give vpcID (or vpcName, the VPC's Name tag): the AWS Load "
        "Balancer Controller cannot look its VPC up from pods on nodes with a metadata hop "
        "limit of 1, and exits"
    ]
    res = CliRunner().invoke(app, ["render", "--root", str(scratch_repo)])
    assert res.exit_code == 1 and not (scratch_repo / "generated").exists()


def test_a_malformed_vpc_id_is_located(scratch_repo: Path) -> None:
    rel = "catalog/clusters/prod-aws-use1.yaml"
    edit(scratch_repo, rel, "vpcID: vpc-06f4e54c78aeeacf7", "vpcID: my-vpc")
    (found,) = errors(scratch_repo)
    assert found.startswith(f"{rel}:13:"), found
    assert "spec.aws.vpcID: 'my-vpc' must be a VPC ID" in found


PROD = "catalog/environments/prod.yaml"


def _drop_dns(root: Path) -> None:
    text = (root / PROD).read_text()
    start = text.index("  # One DNS authority")
    (root / PROD).write_text(text[:start])  # spec.dns is the file's last block


def test_gcp_clusters_left_out_of_the_global_name_are_refused(scratch_repo: Path) -> None:
    _drop_dns(scratch_repo)
    (err,) = errors(scratch_repo)
    assert err.startswith(f"{PROD}:")
    assert "spec.routing.policy: policy 'latency' leaves prod-gcp-usc1, prod-gcp-euw4 out" in err


def test_failover_over_more_than_two_active_clusters_is_refused(scratch_repo: Path) -> None:
    edit(scratch_repo, PROD, "    policy: latency", "    policy: failover")
    (err,) = errors(scratch_repo)
    assert "spec.routing.policy: failover holds one PRIMARY and one SECONDARY" in err
    assert "prod-gcp-usc1, prod-gcp-euw4 would be out" in err


def test_two_clusters_on_one_latency_region_are_refused(scratch_repo: Path) -> None:
    # prod-gcp-usc1 moves to us-east4 (Virginia), the AWS region of prod-aws-use1.
    gcp = "catalog/clusters/prod-gcp-usc1.yaml"
    edit(scratch_repo, gcp, "region: us-central1", "region: us-east4")
    found = [e for e in errors(scratch_repo) if "both map to AWS region" in e]
    (err,) = found
    assert err.startswith(f"{PROD}:") and ": spec.routing.policy: " in err
    assert err.endswith(
        "prod-aws-use1 and prod-gcp-usc1 both map to AWS region us-east-1: Route 53 keeps one "
        "latency record per region and name; use policy weighted or geo, or serve that region "
        "from one cluster"
    )


def test_an_active_cluster_without_weight_is_refused(scratch_repo: Path) -> None:
    edit(scratch_repo, PROD, "    policy: latency", "    policy: weighted")
    edit(scratch_repo, PROD, "      prod-gcp-euw4: 20\n", "")
    edit(scratch_repo, PROD, "      prod-gcp-usc1: 30", "      prod-gcp-usc1: 50")
    (err,) = errors(scratch_repo)
    assert "spec.routing.weights: active cluster 'prod-gcp-euw4' has no weight" in err


STAGING = "catalog/environments/staging.yaml"
STAGING_CHECK = "      staging-gcp-usc1: 2a7e9c13-4f6b-4d28-8e1a-b3c5d7f90e64\n"


def test_failover_to_a_gke_gateway_without_a_health_check_is_refused(
    scratch_repo: Path,
) -> None:
    """Route 53 treats a record without a health check as healthy, and a GKE
    gateway's record is its IP (no alias target health): failover would never
    happen."""
    edit(scratch_repo, STAGING, "    policy: weighted", "    policy: failover")
    assert errors(scratch_repo) == []  # with its health check
    edit(scratch_repo, STAGING, STAGING_CHECK, "")
    edit(scratch_repo, STAGING, "    healthChecks:\n", "")
    (err,) = errors(scratch_repo)
    assert err.startswith(f"{STAGING}:") and ": spec.dns.healthChecks: " in err
    assert err.endswith(
        "staging-gcp-usc1's record in llm.staging.example.com is an IP (no alias target "
        "health): give it a Route 53 health check (spec.dns.healthChecks.staging-gcp-usc1), "
        "or Route 53 treats it as healthy and never fails over"
    )
    res = CliRunner().invoke(app, ["render", "--root", str(scratch_repo)])
    assert res.exit_code == 1 and not (scratch_repo / "generated").exists()


def test_latency_without_a_gke_health_check_is_a_warning(scratch_repo: Path) -> None:
    edit(scratch_repo, PROD, "      prod-gcp-euw4: 9f3b2e7a-1c4d-4e8f-b2a6-7d5e0c9f1a23\n", "")
    result = validate(scratch_repo)
    assert not [d for d in result.diagnostics if d.is_error]
    (warn,) = [str(d) for d in result.diagnostics if "healthChecks" in str(d)]
    assert "prod-gcp-euw4's record in llm.example.com is an IP" in warn
    assert warn.endswith("latency routing keeps sending its share to it while it is down")


def test_a_health_check_nothing_uses_is_refused_at_its_key(scratch_repo: Path) -> None:
    edit(
        scratch_repo,
        STAGING,
        STAGING_CHECK,
        STAGING_CHECK + "      prod-aws-use1: 0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0\n",
    )
    (err,) = errors(scratch_repo)
    line = (
        (scratch_repo / STAGING)
        .read_text()
        .splitlines()
        .index("      prod-aws-use1: 0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0")
    )
    assert err.startswith(f"{STAGING}:{line + 1}:7: spec.dns.healthChecks.prod-aws-use1: ")
    assert err.endswith(
        "health check for 'prod-aws-use1', which is not a cluster of this environment: "
        "no record of llm.staging.example.com would use it"
    )


def test_stopping_a_gke_cluster_keeps_its_health_check_valid(scratch_repo: Path) -> None:
    """`llmgen stop --cluster` only edits suspendedClusters: the ID stays for the restart."""
    edit(scratch_repo, PROD, "  dns:\n", "  suspendedClusters: [prod-gcp-euw4]\n  dns:\n")
    assert errors(scratch_repo) == []


def test_external_dns_puts_the_health_check_on_the_gke_record(
    files: dict[str, bytes],
) -> None:
    """external-dns v0.19.0 (the chart 1.19.0's appVersion) maps a Service
    annotation `external-dns.alpha.kubernetes.io/aws-<x>` to the provider
    property `aws/<x>` (source/annotations/provider_specific.go) and sets
    `aws/health-check-id` as the record set's HealthCheckId
    (provider/aws/aws.go `newChange`); the set identifier keeps each cluster's
    record apart."""
    import yaml

    prefix = "external-dns.alpha.kubernetes.io/"
    want = {
        "prod-gcp-usc1": "5d0c4a1e-6b1f-4c3e-9a57-0e2f7c1b8d41",
        "prod-gcp-euw4": "9f3b2e7a-1c4d-4e8f-b2a6-7d5e0c9f1a23",
        "prod-aws-use1": None,  # an alias record: the NLB's target health
    }
    for cluster, check in want.items():
        body = files[f"generated/clusters/{cluster}/infrastructure/istio/istio-gateway.yaml"]
        (ingress,) = [
            d
            for d in yaml.safe_load_all(body)
            if d and d["kind"] == "HelmRelease" and d["metadata"]["name"] == "istio-ingressgateway"
        ]
        notes = ingress["spec"]["values"]["service"]["annotations"]
        assert notes.get(prefix + "aws-" + "health-check-id") == check, cluster
        assert notes[prefix + "set-identifier"] == cluster
        assert notes[prefix + "hostname"] == "llm.example.com"
