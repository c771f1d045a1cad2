"""`llmgen simulate`: replay traffic against the rendered autoscaling.

Importing this module registers the command on `cli.app`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from llmgen.cli.app import RootOpt, app, echo, find_root, handled

if TYPE_CHECKING:
    from llmgen.simulate.api import Options

FORMATS = ("text", "markdown", "json")


def options(
    env: str,
    model: str | None,
    trace: Path | None,
    pattern: str,
    peak_rps: float | None,
    prompt_tokens: float,
    output_tokens: float,
    minutes: int,
    seed: int,
    step_seconds: float,
    down: list[str] | None,
    pull_gibps: float | None,
    slo_seconds: float | None,
) -> Options:
    """The library's Options from the command line's values."""
    from llmgen.simulate.api import Options, parse_outage

    for name, value in (
        ("--prompt-tokens", prompt_tokens),
        ("--output-tokens", output_tokens),
        ("--peak-rps", peak_rps or 0.0),
    ):
        if not value >= 0 or value == float("inf"):
            raise typer.BadParameter("must be a finite number >= 0", param_hint=name)
    for name, positive in (("--pull-gibps", pull_gibps), ("--slo-seconds", slo_seconds)):
        if positive is not None and not 0 < positive < float("inf"):
            raise typer.BadParameter("must be a finite number > 0", param_hint=name)
    if minutes < 1:
        raise typer.BadParameter("must be >= 1", param_hint="--minutes")
    return Options(
        environment=env,
        model=model,
        pattern=pattern,
        trace=trace,
        peak_rps=peak_rps,
        prompt_tokens=prompt_tokens,
        output_tokens=output_tokens,
        minutes=minutes,
        seed=seed,
        step_seconds=step_seconds,
        outages=tuple(parse_outage(d) for d in down or []),
        pull_gibps=pull_gibps,
        slo_seconds=slo_seconds,
    )


EnvArg = Annotated[str, typer.Option("--env", help="The environment to simulate.")]
ModelOpt = Annotated[
    str | None, typer.Option("--model", help="Report (and chart) this model only.")
]
TraceOpt = Annotated[
    Path | None,
    typer.Option("--trace", help="CSV trace: minute,model,requests_per_second[,prompt,output]."),
]
PatternOpt = Annotated[
    str, typer.Option("--pattern", help="diurnal | burst | ramp (without --trace).")
]
PeakOpt = Annotated[
    float | None,
    typer.Option("--peak-rps", help="Peak requests/s per model (default: half of max capacity)."),
]
PromptOpt = Annotated[float, typer.Option("--prompt-tokens", help="Prompt tokens per request.")]
OutputOpt = Annotated[float, typer.Option("--output-tokens", help="Generated tokens per request.")]
MinutesOpt = Annotated[int, typer.Option("--minutes", help="Minutes to simulate (patterns).")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the pattern's noise.")]
StepOpt = Annotated[
    float, typer.Option("--step-seconds", help="Simulation step (divides 60; HPA syncs 15 s).")
]
DownOpt = Annotated[
    list[str] | None,
    typer.Option("--down", help="CLUSTER@MINUTE[-MINUTE]: mark a cluster down (repeatable)."),
]
PullOpt = Annotated[
    float | None,
    typer.Option("--pull-gibps", help="Weights download GiB/s (default: per cloud)."),
]
SloOpt = Annotated[
    float | None,
    typer.Option("--slo-seconds", help="p95 latency SLO (default: each model's target)."),
]


@app.command("simulate")
@handled
def simulate_cmd(
    env: EnvArg,
    root: RootOpt = None,
    model: ModelOpt = None,
    trace: TraceOpt = None,
    pattern: PatternOpt = "diurnal",
    peak_rps: PeakOpt = None,
    prompt_tokens: PromptOpt = 1000.0,
    output_tokens: OutputOpt = 300.0,
    minutes: MinutesOpt = 1440,
    seed: SeedOpt = 0,
    step_seconds: StepOpt = 60.0,
    down: DownOpt = None,
    pull_gibps: PullOpt = None,
    slo_seconds: SloOpt = None,
    chart: Annotated[
        Path | None, typer.Option("--chart", help="Write a PNG chart of --model here.")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="text | markdown | json")] = "text",
) -> None:
    """Replay traffic against the rendered autoscaling of one environment.

    Plans and renders the catalog, reads the ScaledObjects and node pools as
    rendered, and simulates KEDA, the HPA, node provisioning, cold starts,
    serving, the budget brake and cross-cluster failover minute by minute.
    docs/simulate.md explains the model and where it can be wrong.
    """
    from llmgen.simulate import report
    from llmgen.simulate.api import simulate
    from llmgen.simulate.chart import chart as draw

    if fmt not in FORMATS:
        raise typer.BadParameter(f"choose one of {', '.join(FORMATS)}", param_hint="--format")
    if chart is not None and model is None:
        raise typer.BadParameter("--chart needs --model", param_hint="--chart")
    opts = options(
        env,
        model,
        trace,
        pattern,
        peak_rps,
        prompt_tokens,
        output_tokens,
        minutes,
        seed,
        step_seconds,
        down,
        pull_gibps,
        slo_seconds,
    )
    result = simulate(find_root(root), opts)
    summary = report.summarize(result, env, model)
    if chart is not None and model is not None:
        draw(result, model, chart)
    if fmt == "json":
        echo(report.as_json(result, summary, model).rstrip("\n"))
    elif fmt == "markdown":
        echo(report.markdown(summary, result.notes).rstrip("\n"))
    else:
        echo(report.text(summary, result.notes).rstrip("\n"))


def simulate_base(root: Path, base: str, envs: list[str] | None) -> str:
    """`diff --base REF --simulate`: Markdown comparing base and head per environment."""
    from llmgen.gitops.prsummary import base_inputs
    from llmgen.render.pipeline import checked_catalog
    from llmgen.simulate.api import Options
    from llmgen.simulate.compare import compare, markdown

    if envs:
        names = list(envs)
    else:
        catalog, _warnings = checked_catalog(root)
        names = sorted(catalog.environments)
    with base_inputs(root, base) as base_root:
        return markdown([compare(root, base_root, Options(environment=e)) for e in names])
