"""`llmgen plan` on the shipped catalog equals a calculation done by hand.

Prices are the GpuCatalog's, per GPU at the dearest shape a pool lists (a
pool may launch any of them), spot or on-demand as the pool says:

  L4   aws spot      0.4277/1                        = 0.4277     (dev/staging l4-x1: g6.2xlarge)
  L4   aws spot      max(0.4277, 0.5787)/1           = 0.5787     (prod l4-x1: g6.2xl, g6.4xl)
  L4   aws spot      2.0131/4                        = 0.503275   (dev l4-x4: g6.12xlarge)
  L4   aws on-demand 4.602/4                         = 1.1505     (prod l4-x4)
  L4   gcp spot      0.3414/1                        = 0.3414     (l4-x1: g2-standard-8)
  L4   gcp on-demand 4.0008/4                        = 1.0002     (l4-x4: g2-standard-48)
  A100 aws           27.447/8 on-demand, 13.7235/8 spot (p4de.24xlarge)
  A100 gcp           10.1376/2 on-demand, 4.055/2 spot  (a2-ultragpu-2g)
  H100 aws on-demand 55.04/8 = 6.88;  gcp 88.2539/8 = 11.0317375

Prod's maximum, priced at each model's dearest cluster, is
730 × (24×0.5787 + 8×44.12695 + 4×10.1376 + 8×2.301 + 8×0.5787) = $314,259
without the multi-node 405B, whose replica is a group of 2 nodes × 8 H100
(16 GPUs; 2 × 88.2539 = $176.51/h on gcp, 2 × 55.04 = $110.08/h on aws):
+ 730 × 2 × 176.5078 = $257,701, so $571,961 in all, over the $540,000
budget; the minimum (llama-8b 4, llama-70b 4, mixtral 2, bge 4: one replica
on each of their clusters, as the catalog says; the 405B scales to zero) is
730 × (4×0.5787 + 4×44.12695 + 2×10.1376 + 4×0.5787) = $147,031. The caps
(`cost.budget_caps`) fill headroom as before; the last 70B replica
($32.2k at its dearest cluster) is what no longer fits, so only llama-70b is
capped, 8→7 ($539,748/month). Each bound is split by the routing weights
30/20/20/30 (use1/usw2/euw4/usc1), largest remainder first, ties to the
earlier name, then every cluster is raised to its floor of one (the 405B,
minimum 0, has no floor: its 2 split over its two clusters, 1 each).

Staging's mixtral has a 10% canary inside its 4..6 replicas: a stable and a
canary replica on each cluster at the minimum; the maximum 3/3 by weight, but
the gcp a100-x2 pool holds 2 (maxNodes 2, one replica per node), so aws takes
the third; each cluster's maximum splits 90/10 with at least one canary.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmgen.cli.app import app

REPO = Path(__file__).resolve().parents[1]
H = 730

L4_AWS_SPOT, L4_GCP_SPOT = 0.4277, 0.3414
L4_AWS_SPOT_PROD = 0.5787  # prod's l4-x1 also lists g6.4xlarge
L4X4_AWS_OD, L4X4_GCP_OD, L4X4_AWS_SPOT = 4.602 / 4, 4.0008 / 4, 2.0131 / 4
H100_AWS, H100_GCP = 55.04 / 8, 88.2539 / 8
#: a multi-node replica pays for every node of its group
GROUP_405B = 2
A100_AWS_OD, A100_GCP_OD = 27.447 / 8, 10.1376 / 2
A100_AWS_SPOT, A100_GCP_SPOT = 13.7235 / 8, 4.055 / 2

# (cluster, model) -> (pool, min, max, canary min, canary max, USD per replica-hour)
EXPECTED: dict[str, dict[tuple[str, str], tuple[str, int, int, int, int, float]]] = {
    "dev": {
        ("dev-aws-use2", "bge-m3"): ("l4-x1", 1, 1, 0, 0, L4_AWS_SPOT),
        ("dev-aws-use2", "llama-3-1-8b-instruct"): ("l4-x1", 1, 2, 0, 0, L4_AWS_SPOT),
        ("dev-aws-use2", "qwen2-5-32b-instruct-awq"): ("l4-x4", 0, 1, 0, 0, 2 * L4X4_AWS_SPOT),
    },
    "staging": {
        ("staging-aws-use1", "bge-m3"): ("l4-x1", 1, 1, 0, 0, L4_AWS_SPOT),
        ("staging-aws-use1", "llama-3-1-8b-instruct"): ("l4-x1", 1, 2, 0, 0, L4_AWS_SPOT),
        ("staging-aws-use1", "mixtral-8x7b-instruct"): ("a100-x8", 1, 3, 1, 1, 2 * A100_AWS_SPOT),
        ("staging-gcp-usc1", "bge-m3"): ("l4-x1", 1, 1, 0, 0, L4_GCP_SPOT),
        ("staging-gcp-usc1", "llama-3-1-8b-instruct"): ("l4-x1", 1, 2, 0, 0, L4_GCP_SPOT),
        ("staging-gcp-usc1", "mixtral-8x7b-instruct"): ("a100-x2", 1, 1, 1, 1, 2 * A100_GCP_SPOT),
    },
    "prod": {
        ("prod-aws-use1", "bge-m3"): ("l4-x1", 1, 2, 0, 0, L4_AWS_SPOT_PROD),
        ("prod-aws-use1", "llama-3-1-8b-instruct"): ("l4-x1", 1, 7, 0, 0, L4_AWS_SPOT_PROD),
        ("prod-aws-use1", "llama-3-3-70b-instruct"): ("h100-x8", 1, 2, 0, 0, 4 * H100_AWS),
        ("prod-aws-use1", "llama-3-1-405b-instruct"): (
            "h100-x8-group",
            0,
            1,
            0,
            0,
            GROUP_405B * 8 * H100_AWS,
        ),
        ("prod-aws-use1", "mixtral-8x7b-instruct"): ("a100-x8", 1, 2, 0, 0, 2 * A100_AWS_OD),
        ("prod-aws-use1", "qwen2-5-32b-instruct-awq"): ("l4-x4", 0, 2, 0, 0, 2 * L4X4_AWS_OD),
        ("prod-aws-usw2", "bge-m3"): ("l4-x1", 1, 2, 0, 0, L4_AWS_SPOT_PROD),
        ("prod-aws-usw2", "llama-3-1-8b-instruct"): ("l4-x1", 1, 5, 0, 0, L4_AWS_SPOT_PROD),
        ("prod-aws-usw2", "llama-3-3-70b-instruct"): ("h100-x8", 1, 2, 0, 0, 4 * H100_AWS),
        ("prod-aws-usw2", "qwen2-5-32b-instruct-awq"): ("l4-x4", 0, 2, 0, 0, 2 * L4X4_AWS_OD),
        ("prod-gcp-euw4", "bge-m3"): ("l4-x1", 1, 2, 0, 0, L4_GCP_SPOT),
        ("prod-gcp-euw4", "llama-3-1-8b-instruct"): ("l4-x1", 1, 5, 0, 0, L4_GCP_SPOT),
        ("prod-gcp-euw4", "llama-3-3-70b-instruct"): ("h100-x8", 1, 1, 0, 0, 4 * H100_GCP),
        ("prod-gcp-euw4", "qwen2-5-32b-instruct-awq"): ("l4-x4", 0, 2, 0, 0, 2 * L4X4_GCP_OD),
        ("prod-gcp-usc1", "bge-m3"): ("l4-x1", 1, 2, 0, 0, L4_GCP_SPOT),
        ("prod-gcp-usc1", "llama-3-1-8b-instruct"): ("l4-x1", 1, 7, 0, 0, L4_GCP_SPOT),
        ("prod-gcp-usc1", "llama-3-3-70b-instruct"): ("h100-x8", 1, 2, 0, 0, 4 * H100_GCP),
        ("prod-gcp-usc1", "llama-3-1-405b-instruct"): (
            "h100-x8-group",
            0,
            1,
            0,
            0,
            GROUP_405B * 8 * H100_GCP,
        ),
        ("prod-gcp-usc1", "mixtral-8x7b-instruct"): ("a100-x2", 1, 2, 0, 0, 2 * A100_GCP_OD),
        ("prod-gcp-usc1", "qwen2-5-32b-instruct-awq"): ("l4-x4", 0, 2, 0, 0, 2 * L4X4_GCP_OD),
    },
}


@pytest.fixture(scope="module")
def report() -> dict[str, dict[str, object]]:
    result = CliRunner().invoke(app, ["plan", "--root", str(REPO), "--format", "json"])
    assert result.exit_code == 0, result.output
    return {e["environment"]: e for e in json.loads(result.output)["environments"]}


@pytest.mark.parametrize("env", sorted(EXPECTED))
def test_every_placement_matches_the_hand_calculation(
    report: dict[str, dict[str, object]], env: str
) -> None:
    rows = {
        (c["cluster"], m["model"]): m
        for c in report[env]["clusters"]  # type: ignore[attr-defined]
        for m in c["models"]
    }
    assert set(rows) == set(EXPECTED[env])
    for key, (pool, lo, hi, clo, chi, hourly) in EXPECTED[env].items():
        m = rows[key]
        got = (
            m["pool"],
            m["min_replicas"],
            m["max_replicas"],
            m["canary_min_replicas"],
            m["canary_max_replicas"],
        )
        assert got == (pool, lo, hi, clo, chi), key
        assert m["usd_per_month_min"] == pytest.approx((lo + clo) * hourly * H, abs=0.01), key
        assert m["usd_per_month_max"] == pytest.approx((hi + chi) * hourly * H, abs=0.01), key


@pytest.mark.parametrize(
    ("env", "low", "high", "budget"),
    [
        # dev: 730 × (0.4277 + 0.4277 + 0) .. 730 × (0.4277 + 2×0.4277 + 2×0.503275)
        ("dev", 624.44, 1671.44, 5000.0),
        # staging: mixtral 1 + 1 canary per cluster up to 3 + 1 (aws) and 1 + 1 (gcp);
        # llama 1..2, bge 1 per cluster (from the table above)
        ("staging", None, None, 30000.0),
        ("prod", None, None, 540000.0),
    ],
)
def test_environment_totals(
    report: dict[str, dict[str, object]],
    env: str,
    low: float | None,
    high: float | None,
    budget: float,
) -> None:
    e = report[env]
    if low is None or high is None:
        rows = EXPECTED[env].values()
        low = sum((lo + clo) * h * H for _, lo, _, clo, _, h in rows)
        high = sum((hi + chi) * h * H for _, _, hi, _, chi, h in rows)
    assert e["usd_per_month_min"] == pytest.approx(low, abs=0.05)
    assert e["usd_per_month_max"] == pytest.approx(high, abs=0.05)
    assert e["budget_usd_per_month"] == budget
    assert e["usd_per_month_max"] <= budget  # type: ignore[operator]


def test_prod_is_capped_and_says_why(report: dict[str, dict[str, object]]) -> None:
    prod = report["prod"]
    notes = prod["notes"]
    assert notes[0] == "budget: maximum replicas capped to keep the worst case within budget"  # type: ignore[index]
    # The rest: what the multi-node groups run without (plan/interconnect.py).
    assert [n.split(":")[0] for n in notes[1:]] == [  # type: ignore[index]
        "llama-3-1-405b-instruct on prod-aws-use1",
        "llama-3-1-405b-instruct on prod-gcp-usc1",
    ]
    # validate's located warnings about the environment are in the report too.
    assert (
        "spec.models[1].replicas.max: maximum replicas of 'llama-3-3-70b-instruct' capped 8→7 "
        "by the budget of $540,000/month ($571,961/month at every maximum)"
    ) in prod["warnings"]  # type: ignore[operator]
    assert prod["idle_usd_per_month"] == 0
    models = {(c["cluster"], m["model"]): m for c in prod["clusters"] for m in c["models"]}  # type: ignore[attr-defined]
    reasons = models[("prod-aws-use1", "llama-3-3-70b-instruct")]["reasons"]
    assert reasons == [
        "min 1 of 4, max 2 of 7",
        "split by routing weights",
        "budget: environment max capped 8→7",
    ]
    # Only the 70B is capped: the rest of the budget buys every other model's maximum.
    assert {(m["model"], m["max_replicas"]) for m in models.values()} >= {
        ("llama-3-1-8b-instruct", 7),
        ("qwen2-5-32b-instruct-awq", 2),
    }


def test_spot_savings_and_gpu_caps(report: dict[str, dict[str, object]]) -> None:
    # dev, all spot: on-demand would be g6.2xlarge 0.978 (l4-x1) and g6.12xlarge 4.602/4 (l4-x4).
    per_hour = (
        2 * (0.978 - L4_AWS_SPOT) + 1 * (0.978 - L4_AWS_SPOT) + 2 * (4.602 / 4 - L4X4_AWS_SPOT)
    )
    assert report["dev"]["spot_savings_per_month_max"] == pytest.approx(per_hour * H, abs=0.05)
    (dev,) = report["dev"]["clusters"]  # type: ignore[misc]
    # l4-x1: llama 2 + bge 1 on 1-GPU nodes = 3 nodes, +1 node of rollout headroom
    # = 4 GPUs; l4-x4: one 4-GPU node (+1 headroom, but maxNodes is 1); a10g unused.
    assert dev["gpu_caps"] == {"l4-x1": 4, "l4-x4": 4, "a10g-x4": 0}
    staging = {c["cluster"]: c for c in report["staging"]["clusters"]}  # type: ignore[attr-defined]
    # gcp a100-x2 holds one 2-GPU replica per node: mixtral 1 + canary 1 = 2 nodes
    # (+1 headroom, but maxNodes is 2) = 4 GPUs.
    assert staging["staging-gcp-usc1"]["gpu_caps"]["a100-x2"] == 4


def test_markdown_has_a_mermaid_picture_and_text_has_tables() -> None:
    runner = CliRunner()
    md = runner.invoke(
        app, ["plan", "--root", str(REPO), "--format", "markdown", "--env", "staging"]
    )
    assert md.exit_code == 0, md.output
    assert "```mermaid\nflowchart LR\n" in md.output
    assert "env_staging --> cl_staging_aws_use1" in md.output
    assert 'cl_staging_gcp_usc1 -->|"1..1"| m_staging_gcp_usc1_mixtral_8x7b_instruct' in md.output
    assert "prod" not in md.output
    text = runner.invoke(app, ["plan", "--root", str(REPO), "--env", "dev"])
    assert text.exit_code == 0, text.output
    assert text.output.splitlines()[0].startswith("dev: $624–$1,671/month of $5,000 (12%–33%)")
    assert "qwen2-5-32b-instruct-awq" in text.output


def test_unknown_environment_and_format_are_usage_errors() -> None:
    runner = CliRunner()
    bad_env = runner.invoke(app, ["plan", "--root", str(REPO), "--env", "prdo"])
    assert bad_env.exit_code == 2
    bad_fmt = runner.invoke(app, ["plan", "--root", str(REPO), "--format", "xml"])
    assert bad_fmt.exit_code == 2
