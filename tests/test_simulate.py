"""`llmgen simulate` on the shipped catalog: behaviour, properties, CLI and diff.

The units are planned and rendered from the shipped catalog, so these tests
read the ScaledObjects exactly as rendered (today's formula or tomorrow's).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from llmgen.cli import app
from llmgen.simulate.api import Options, make_load, prepare, simulate
from llmgen.simulate.engine import Outage, Result, run
from llmgen.simulate.objects import Trigger
from llmgen.simulate.setup import Slot, Unit
from llmgen.simulate.traffic import Load

REPO = Path(__file__).resolve().parents[1]
STZ = "qwen2-5-32b-instruct-awq"  # the shipped model with min 0 and scaleToZero
runner = CliRunner()
FIXTURE = [HealthCheck.function_scoped_fixture]


@pytest.fixture(scope="module")
def prod() -> tuple[list[Unit], list[Slot]]:
    _plan, units, slots = prepare(REPO, Options("prod"))
    return units, slots


def flat(units: list[Unit], rates: dict[str, list[float]], minutes: int) -> Load:
    """Per model a per-minute rate (its list, repeated to `minutes`), 1000/300 tokens."""
    models = tuple(sorted({u.model for u in units}))
    rps = np.zeros((len(models), minutes))
    for i, m in enumerate(models):
        seq = rates.get(m, [0.0])
        rps[i] = [seq[min(t, len(seq) - 1)] for t in range(minutes)]
    shape = rps.shape
    return Load(models, rps, np.full(shape, 1000.0), np.full(shape, 300.0))


def rows(result: Result, model: str) -> list[int]:
    return [u.index for u in result.units if u.model == model]


# ------------------------------------------------------------------ behaviour


def test_scale_to_zero_sleeps_after_the_cooldown(prod: tuple[list[Unit], list[Slot]]) -> None:
    units, slots = prod
    result = run(units, slots, flat(units, {}, 60))
    for i in rows(result, STZ):
        assert result.units[i].so.min_replicas == 0
        assert result.series["replicas"][i][-1] == 0
    # Models that may not scale to zero keep their minimum.
    others = [u.index for u in units if u.so.min_replicas > 0]
    assert (result.series["replicas"][others] >= 1).all()


def test_failover_when_a_cluster_is_down(prod: tuple[list[Unit], list[Slot]]) -> None:
    units, slots = prod
    model = "llama-3-3-70b-instruct"
    load = flat(units, {model: [4.0]}, 120)
    base = run(units, slots, load)
    down = run(units, slots, load, (Outage("prod-aws-use1", 30, 60),))
    use1 = next(u.index for u in units if u.model == model and u.cluster == "prod-aws-use1")
    others = [i for i in rows(base, model) if i != use1]
    assert down.series["ready"][use1][35:60].max() == 0
    assert down.series["arrivals"][use1][35:60].max() == 0
    # Its share went to the other clusters (DNS), none was lost while they had replicas.
    assert down.series["arrivals"][others, 40].sum() == pytest.approx(4.0, rel=1e-6)
    assert base.series["arrivals"][others, 40].sum() < 4.0
    assert down.shed[down.load.row(model)][35:60].sum() == 0
    # After the outage the cluster's pods come back only after a cold start.
    cold = int(np.ceil(units[use1].cold_new_node / 60.0))
    assert down.series["ready"][use1][60 : 60 + cold - 1].max() == 0
    assert down.series["ready"][use1][60 + cold + 1] >= 1


def test_fallback_replicas_when_a_trigger_errors(prod: tuple[list[Unit], list[Slot]]) -> None:
    # kedacore/keda v2.18.1 pkg/fallback/fallback.go: after more than
    # failureThreshold failed reads the composite becomes target x replicas
    # (currentReplicasIfHigher: max(current, fallback.replicas)); with
    # ignoreNullValues "false" an empty result is an error
    # (pkg/scalers/prometheus_scaler.go).
    units, slots = prod
    u = next(u for u in units if u.model == "llama-3-1-8b-instruct" and u.so.max_replicas >= 3)
    lost = Trigger(
        "queue_length",
        "prometheus",
        'sum(vllm:num_requests_waiting{a="b"}) > 1e9',
        ignore_nulls=False,
    )
    so = dataclasses.replace(
        u.so,
        triggers=(lost, *[t for t in u.so.triggers if t.name != "queue_length"]),
        fallback_replicas=3,
        fallback_behavior="currentReplicasIfHigher",
        min_replicas=1,
    )
    changed = [dataclasses.replace(x, so=so) if x.index == u.index else x for x in units]
    result = run(changed, slots, flat(units, {}, 30), warmup_minutes=0)
    replicas = result.series["replicas"][u.index]
    assert replicas[0] == 3  # the 4th failed 15 s read (> 3) falls back within the minute
    assert (replicas == 3).all()


def test_budget_brake_holds_replicas(prod: tuple[list[Unit], list[Slot]]) -> None:
    # The budget trigger reads the cluster's spend; with a tiny allotment the
    # formula's `budget_used >= 1 ? ready_replicas : max` holds the replicas.
    units, slots = prod
    tiny = []
    for u in units:
        trig = tuple(
            dataclasses.replace(t, query=t.query.replace("* 730 /", "* 730000000 /"))
            if t.name == "budget_used"
            else t
            for t in u.so.triggers
        )
        tiny.append(dataclasses.replace(u, so=dataclasses.replace(u.so, triggers=trig)))
    load = flat(units, {m: [50.0] for m in {u.model for u in units}}, 90)
    braked = run(tiny, slots, load, warmup_minutes=0)
    free = run(units, slots, load, warmup_minutes=0)
    assert braked.series["replicas"].sum() < free.series["replicas"].sum()
    start = np.array([u.so.min_replicas for u in units], dtype=float)
    assert (braked.series["replicas"].max(axis=1) <= np.maximum(start, 1)).all()


# ----------------------------------------------------------------- properties


@settings(max_examples=12, deadline=None, suppress_health_check=FIXTURE)
@given(
    low=st.floats(0.0, 20.0),
    extra=st.floats(0.0, 40.0),
    model=st.sampled_from(["llama-3-1-8b-instruct", "mixtral-8x7b-instruct", STZ]),
)
def test_more_load_never_gives_fewer_replicas_at_steady_state(
    prod: tuple[list[Unit], list[Slot]], low: float, extra: float, model: str
) -> None:
    units, slots = prod
    a = run(units, slots, flat(units, {model: [low]}, 120))
    b = run(units, slots, flat(units, {model: [low + extra]}, 120))
    idx = rows(a, model)
    assert (a.series["replicas"][idx, -1] <= b.series["replicas"][idx, -1]).all()


@settings(max_examples=10, deadline=None, suppress_health_check=FIXTURE)
@given(
    peak=st.floats(0.0, 500.0),
    seed=st.integers(0, 2**16),
    kind=st.sampled_from(["diurnal", "burst", "ramp"]),
)
def test_a_budget_cap_is_never_exceeded(
    prod: tuple[list[Unit], list[Slot]], peak: float, seed: int, kind: str
) -> None:
    units, slots = prod
    opts = Options("prod", pattern=kind, peak_rps=peak, minutes=180, seed=seed)
    result = run(units, slots, make_load(units, opts))
    replicas = result.series["replicas"]
    caps = np.array([u.so.max_replicas for u in units], dtype=float)[:, None]
    assert (replicas <= caps).all()
    # The allocator's caps keep the environment's replicas within its monthly budget.
    env = units[0].placement.environment
    hourly = np.array([u.placement.replica_hourly_usd for u in units])[:, None]
    assert ((replicas * hourly).sum(axis=0) * 730 <= env.monthly_budget_usd + 1e-6).all()


@settings(max_examples=10, deadline=None, suppress_health_check=FIXTURE)
@given(quiet=st.integers(15, 60), rate=st.floats(0.001, 5.0))
def test_scale_to_zero_wakes_on_the_first_request(
    prod: tuple[list[Unit], list[Slot]], quiet: int, rate: float
) -> None:
    units, slots = prod
    minutes = quiet + 40
    result = run(units, slots, flat(units, {STZ: [0.0] * quiet + [rate]}, minutes))
    for i in rows(result, STZ):
        replicas = result.series["replicas"][i]
        assert replicas[quiet - 1] == 0  # asleep before the request
    # The gateway that receives it wakes its cluster's Deployment in the same minute.
    woken = [result.series["replicas"][i][quiet] for i in rows(result, STZ)]
    assert min(woken) >= 1
    ready = result.series["ready"][rows(result, STZ)].max(axis=0)
    assert ready[quiet:].max() >= 1  # and it serves once the cold start is over


# ------------------------------------------------------------ determinism, CLI


def test_the_shipped_catalog_is_deterministic_for_a_seed() -> None:
    def once(seed: int) -> str:
        out = runner.invoke(
            app,
            [
                "simulate",
                "--root",
                str(REPO),
                "--env",
                "prod",
                "--minutes",
                "120",
                "--seed",
                str(seed),
                "--format",
                "json",
            ],
        )
        assert out.exit_code == 0, out.output
        return out.output

    first = once(7)
    assert once(7) == first
    assert once(8) != first
    doc = json.loads(first)
    assert doc["summary"]["environment"] == "prod" and doc["units"]
    series = doc["units"][0]["series"]
    assert set(series) >= {"replicas", "queue", "latency_p95", "gpus", "usd_per_hour"}
    assert len(series["replicas"]) == 120


def test_markdown_and_chart(tmp_path: Path) -> None:
    png = tmp_path / "a.png"
    out = runner.invoke(
        app,
        [
            "simulate",
            "--root",
            str(REPO),
            "--env",
            "prod",
            "--model",
            STZ,
            "--minutes",
            "90",
            "--format",
            "markdown",
            "--chart",
            str(png),
            "--down",
            "prod-aws-use1@30-60",
        ],
    )
    assert out.exit_code == 0, out.output
    assert "| model | clusters | peak replicas |" in out.output
    assert f"| {STZ} |" in out.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = tmp_path / "b.png"
    runner.invoke(
        app,
        [
            "simulate",
            "--root",
            str(REPO),
            "--env",
            "prod",
            "--model",
            STZ,
            "--minutes",
            "90",
            "--chart",
            str(again),
            "--down",
            "prod-aws-use1@30-60",
        ],
    )
    assert again.read_bytes() == png.read_bytes()


def test_trace_file(tmp_path: Path) -> None:
    trace = tmp_path / "trace.csv"
    trace.write_text(
        "minute,model,requests_per_second,prompt_tokens,output_tokens\n"
        f"0,{STZ},0,,\n30,{STZ},2,500,100\n59,*,0.5,,\n"
    )
    out = runner.invoke(
        app,
        [
            "simulate",
            "--root",
            str(REPO),
            "--env",
            "prod",
            "--trace",
            str(trace),
            "--format",
            "json",
        ],
    )
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert doc["summary"]["minutes"] == 60
    bad = tmp_path / "bad.csv"
    bad.write_text("minute,model,requests_per_second\n0,nope,1\n")
    out = runner.invoke(
        app, ["simulate", "--root", str(REPO), "--env", "prod", "--trace", str(bad)]
    )
    assert out.exit_code == 1
    assert f"{bad}:2: model 'nope' is not in this environment" in out.output


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--pattern", "sine"], 2, "unknown pattern 'sine'"),
        (["--down", "prod-aws-use1"], 2, "expected CLUSTER@MINUTE"),
        (["--down", "nowhere@3"], 2, "not a cluster of prod"),
        (["--model", "nope"], 2, "not placed in prod"),
        (["--chart", "x.png"], 2, "--chart needs --model"),
    ],
)
def test_usage_errors(args: list[str], code: int, message: str) -> None:
    out = runner.invoke(
        app, ["simulate", "--root", str(REPO), "--env", "prod", "--minutes", "5", *args]
    )
    assert out.exit_code == code, out.output
    assert message in out.output


def test_diff_base_simulate_compares_under_the_same_traffic(scratch_repo: Path) -> None:
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], cwd=scratch_repo, check=True)
    subprocess.run([*git, "add", "-A"], cwd=scratch_repo, check=True)
    subprocess.run([*git, "commit", "-qm", "base"], cwd=scratch_repo, check=True)
    env = scratch_repo / "catalog" / "environments" / "prod.yaml"
    text = env.read_text()
    assert "monthlyUSD: 540000" in text
    env.write_text(text.replace("monthlyUSD: 540000", "monthlyUSD: 450000"))
    out = runner.invoke(
        app,
        [
            "diff",
            "--root",
            str(scratch_repo),
            "--base",
            "HEAD",
            "--simulate",
            "--env",
            "prod",
            "--format",
            "markdown",
        ],
    )
    assert out.exit_code == 0, out.output
    assert "## Simulated traffic: base → head" in out.output
    table = out.output.split("## Simulated traffic")[1]
    assert "→" in table.split("| model |")[1]  # some figure moved with the smaller budget


def test_simulate_without_base_is_a_usage_error() -> None:
    out = runner.invoke(app, ["diff", "--root", str(REPO), "--simulate"])
    assert out.exit_code == 2


def test_the_result_is_for_the_whole_environment() -> None:
    result = simulate(REPO, Options("prod", minutes=10))
    assert {u.cluster for u in result.units} == {
        "prod-aws-use1",
        "prod-aws-usw2",
        "prod-gcp-usc1",
        "prod-gcp-euw4",
    }


@pytest.mark.parametrize(
    "args",
    [
        ["--peak-rps", "-1"],
        ["--peak-rps", "nan"],
        ["--pull-gibps", "0"],
        ["--slo-seconds", "inf"],
        ["--prompt-tokens", "-5"],
        ["--step-seconds", "7"],
        ["--minutes", "0"],
    ],
)
def test_bad_numbers_are_usage_errors(args: list[str]) -> None:
    out = runner.invoke(app, ["simulate", "--root", str(REPO), "--env", "prod", *args])
    assert out.exit_code == 2, out.output
