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
    text = (scratch_repo / rel).read_text()
    vpc = next(line for line in text.splitlines() if "vpcID:" in line)
    edit(scratch_repo, rel, vpc + "\n", "")
    assert errors(scratch_repo) == [
        f"{rel}:13:5: spec.aws: give vpcID (or vpcName, the VPC's Name tag): the AWS Load "
        "Balancer Controller cannot look its VPC up from pods on nodes with a metadata hop "
        "limit of 1, and exits"
    ]
    res = CliRunner().invoke(app, ["render", "--root", str(scratch_repo)])
    assert res.exit_code == 1 and not (scratch_repo / "generated").exists()


def test_a_malformed_vpc_id_is_located(scratch_repo: Path) -> None:
    rel = "catalog/clusters/prod-aws-use1.yaml"
    text = (scratch_repo / rel).read_text()
    vpc = next(line for line in text.splitlines() if "vpcID:" in line)
    edit(scratch_repo, rel, vpc, "    vpcID: my-vpc")
    (found,) = errors(scratch_repo)
    assert found.startswith(f"{rel}:15:12: spec.aws.vpcID: 'my-vpc' must be a VPC ID")
