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
    end = text.index('    accountID: "111122223333"\n', start) + len(
        '    accountID: "111122223333"\n'
    )
    (root / PROD).write_text(text[:start] + text[end:])


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
