"""The lifecycle verbs: init, deploy, undeploy, stop, start, model new.

Each edits catalog/ through the library (validated first, written atomically)
and prints the catalog diff; `--commit` then renders and commits. Importing
this module registers the commands on `cli.app`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from llmgen.cli import report
from llmgen.cli.app import (
    CLUSTER_COMPLETION,
    ENV_COMPLETION,
    MODEL_COMPLETION,
    ReportFormat,
    RootOpt,
    app,
    echo,
    emit_json,
    find_root,
    format_option,
    handled,
)

# ----------------------------------------------------------------- lifecycle
# Each lifecycle command edits catalog/ (validated first, written atomically)
# and prints the catalog diff; --commit then renders and commits.

CommitOpt = Annotated[
    bool,
    typer.Option("--commit", help="Then commit the catalog change, render, and commit generated/."),
]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Show the change; write nothing.")]
EnvNameOpt = Annotated[
    str,
    typer.Option("--env", help="The environment to change.", autocompletion=ENV_COMPLETION),
]
FormatOpt = Annotated[ReportFormat, format_option(ReportFormat)]


def _lifecycle(base: Path, outcome: Any, commit: bool, fmt: str = "text") -> None:
    from llmgen.lifecycle import verbs as lifecycle

    done = None
    if commit and outcome.changed and outcome.applied.written:
        done = lifecycle.commit_outcome(base, outcome)
    if fmt == "json":
        emit_json(
            True,
            {
                "action": outcome.action,
                "summary": outcome.summary,
                "changed": outcome.changed,
                "written": outcome.applied.written,
                "paths": outcome.paths,
                "diff": outcome.diff() if outcome.changed else "",
                "notes": list(outcome.notes),
                "diagnostics": report.diagnostic_dicts(outcome.warnings),
                "commits": (
                    {"catalog": done.catalog, "generated": done.generated, "notes": done.notes}
                    if done is not None
                    else None
                ),
            },
        )
        return
    echo(lifecycle.describe(outcome))
    if done is not None:
        echo(lifecycle.describe_commit(done))


def _no_commit_on_dry_run(commit: bool, dry_run: bool) -> None:
    if commit and dry_run:
        raise typer.BadParameter("--commit and --dry-run exclude each other", param_hint="--commit")


def _commit_preflight(base: Path, commit: bool) -> None:
    """With --commit, refuse what would stop the commit before the verb edits anything."""
    if commit:
        from llmgen.gitops.commit import check_index_unlocked, open_repo

        check_index_unlocked(open_repo(base))


@app.command("init")
@handled
def init_cmd(
    directory: Annotated[Path, typer.Argument(help="Folder of the new repository.")] = Path(),
    force: Annotated[
        bool, typer.Option("--force", help="Add to a non-empty folder, replacing same-named files.")
    ] = False,
    eject: Annotated[
        bool,
        typer.Option("--eject", help="Also copy llmgen's schemas/ and templates/ in (see eject)."),
    ] = False,
    fmt: FormatOpt = ReportFormat.text,
) -> None:
    """Scaffold a new llmgen repository that validates and renders as it is.

    One cluster per cloud, one environment, one model on an L4, gpus.yaml,
    platform.yaml, overlays/, a CI workflow and a pre-commit config. The
    schemas and templates stay those of the installed llmgen (upgrades reach
    the repo) unless --eject. Refuses a non-empty folder unless --force.
    """
    from llmgen.lifecycle.scaffold import PLACEHOLDER_PACKAGE, init

    outcome = init(directory, force=force, eject=eject)
    workflow = (outcome.root / ".github/workflows/llmgen.yaml").read_text(encoding="utf-8")
    notes = []
    if PLACEHOLDER_PACKAGE in workflow:
        notes.append(
            "set LLMGEN_PACKAGE in .github/workflows/llmgen.yaml to the llmgen repository "
            "and commit you vetted (the package index's 'llmgen' is another project)"
        )
    if fmt == "json":
        emit_json(
            True,
            {
                "root": str(outcome.root),
                "files": outcome.files,
                "notes": notes,
                "diagnostics": report.diagnostic_dicts(outcome.warnings),
            },
        )
        return
    echo(f"created an llmgen repository in {outcome.root} ({len(outcome.files)} files)")
    for note in notes:
        echo(f"note: {note}", err=True)
    echo("next: llmgen validate && llmgen render, commit, then per cluster")
    echo("'llmgen bootstrap <cluster>' and flux bootstrap --path=clusters/<cluster>")


@app.command("eject")
@handled
def eject_cmd(
    root: RootOpt = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace existing schemas/ and templates/.")
    ] = False,
) -> None:
    """Copy the installed llmgen's schemas/ and templates/ into the repository.

    The repository's copies then win, and upgrades of llmgen no longer reach
    them; validate and render say when they differ from the installed ones.
    """
    from llmgen.lifecycle.scaffold import eject_into

    base = find_root(root)
    written = eject_into(base, force=force)
    echo(f"copied {len(written)} files into schemas/ and templates/ of {base}")


@app.command("deploy")
@handled
def deploy_cmd(
    model: Annotated[
        str, typer.Argument(help="A model of catalog/models/.", autocompletion=MODEL_COMPLETION)
    ],
    env: EnvNameOpt,
    clusters: Annotated[
        str | None,
        typer.Option("--clusters", help="Comma-separated clusters of the environment to serve on."),
    ] = None,
    all_clusters: Annotated[
        bool, typer.Option("--all-clusters", help="Serve on every cluster (drop --clusters).")
    ] = False,
    min_replicas: Annotated[
        int | None, typer.Option("--min", min=0, help="Fewest replicas in the environment.")
    ] = None,
    max_replicas: Annotated[
        int | None, typer.Option("--max", min=0, help="Most replicas in the environment.")
    ] = None,
    dry_run: DryRunOpt = False,
    commit: CommitOpt = False,
    root: RootOpt = None,
    fmt: FormatOpt = ReportFormat.text,
) -> None:
    """Serve MODEL in an environment: add or update its entry under the environment's models:."""
    from llmgen.lifecycle.verbs import deploy

    _no_commit_on_dry_run(commit, dry_run)
    base = find_root(root)
    _commit_preflight(base, commit)
    only = [c.strip() for c in clusters.split(",")] if clusters is not None else None
    outcome = deploy(
        base,
        model,
        env,
        clusters=[c for c in only if c] if only is not None else None,
        all_clusters=all_clusters,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        dry_run=dry_run,
    )
    _lifecycle(base, outcome, commit, fmt)


@app.command("undeploy")
@handled
def undeploy_cmd(
    model: Annotated[
        str,
        typer.Argument(
            help="A model deployed to the environment.", autocompletion=MODEL_COMPLETION
        ),
    ],
    env: EnvNameOpt,
    dry_run: DryRunOpt = False,
    commit: CommitOpt = False,
    root: RootOpt = None,
    fmt: FormatOpt = ReportFormat.text,
) -> None:
    """Stop serving MODEL in an environment: remove its entry; Flux prunes its resources."""
    from llmgen.lifecycle.verbs import undeploy

    _no_commit_on_dry_run(commit, dry_run)
    base = find_root(root)
    _commit_preflight(base, commit)
    _lifecycle(base, undeploy(base, model, env, dry_run=dry_run), commit, fmt)


@app.command("stop")
@handled
def stop_cmd(
    env: EnvNameOpt,
    cluster: Annotated[
        list[str] | None,
        typer.Option(
            "--cluster",
            help="Stop only this cluster of the environment (repeatable).",
            autocompletion=CLUSTER_COMPLETION,
        ),
    ] = None,
    dry_run: DryRunOpt = False,
    commit: CommitOpt = False,
    root: RootOpt = None,
    fmt: FormatOpt = ReportFormat.text,
) -> None:
    """Stop an environment: its models scale to zero and stay there.

    Sets spec.suspended: true (or lists --cluster under spec.suspendedClusters).
    Each model's KEDA ScaledObject is then rendered with
    autoscaling.keda.sh/paused-replicas: "0": KEDA scales the Deployment to
    zero and holds it there while Flux keeps reconciling. GPU nodes drain
    away: Karpenter consolidates empty nodes on EKS, the GKE cluster
    autoscaler scales node pools down to minNodes. 'llmgen start' reverses it.
    """
    from llmgen.lifecycle.verbs import stop

    _no_commit_on_dry_run(commit, dry_run)
    base = find_root(root)
    _commit_preflight(base, commit)
    _lifecycle(base, stop(base, env, cluster or [], dry_run=dry_run), commit, fmt)


@app.command("start")
@handled
def start_cmd(
    env: EnvNameOpt,
    cluster: Annotated[
        list[str] | None,
        typer.Option(
            "--cluster",
            help="Start only this cluster of the environment (repeatable).",
            autocompletion=CLUSTER_COMPLETION,
        ),
    ] = None,
    dry_run: DryRunOpt = False,
    commit: CommitOpt = False,
    root: RootOpt = None,
    fmt: FormatOpt = ReportFormat.text,
) -> None:
    """Start a stopped environment (or some of its clusters): KEDA scales its models again."""
    from llmgen.lifecycle.verbs import start

    _no_commit_on_dry_run(commit, dry_run)
    base = find_root(root)
    _commit_preflight(base, commit)
    _lifecycle(base, start(base, env, cluster or [], dry_run=dry_run), commit, fmt)


model_app = typer.Typer(help="Add models to the catalog.", no_args_is_help=True)
app.add_typer(model_app, name="model")


@model_app.command("new")
@handled
def model_new_cmd(
    name: Annotated[str, typer.Argument(help="Model name (DNS-1123), e.g. qwen2-5-7b-instruct.")],
    repo: Annotated[str, typer.Option("--from-hf", help="Hugging Face repo, e.g. org/Model-7B.")],
    revision: Annotated[str, typer.Option("--revision", help="Commit SHA of the repo to pin.")],
    gpu: Annotated[str, typer.Option("--gpu", help="A GPU of catalog/gpus.yaml, e.g. L4.")],
    gpu_count: Annotated[int, typer.Option("--gpu-count", min=1, help="GPUs per replica.")] = 1,
    nodes: Annotated[
        int,
        typer.Option(
            "--nodes",
            min=1,
            help="Nodes one replica spans (docs/multinode.md): --gpu-count / N GPUs per node.",
        ),
    ] = 1,
    params_b: Annotated[
        float | None,
        typer.Option("--params-b", help="Parameters in billions (default: from the repo name)."),
    ] = None,
    task: Annotated[str, typer.Option("--task", help="generate | embed")] = "generate",
    image: Annotated[
        str | None, typer.Option("--image", help="Serving image (default: the catalog's usual).")
    ] = None,
    dtype: Annotated[str, typer.Option("--dtype", help="auto | float16 | bfloat16")] = "bfloat16",
    quantization: Annotated[
        str | None, typer.Option("--quantization", help="awq, gptq, fp8, ...")
    ] = None,
    max_model_len: Annotated[int, typer.Option("--max-model-len", min=1)] = 8192,
    weights_bucket: Annotated[
        str | None,
        typer.Option("--weights-bucket", help="Mirror bucket (default: the catalog's usual)."),
    ] = None,
    weights_sha256: Annotated[
        str | None, typer.Option("--weights-sha256", help="sha256 of the weights manifest.")
    ] = None,
    team: Annotated[str | None, typer.Option("--team", help="Owning team.")] = None,
    cost_center: Annotated[str | None, typer.Option("--cost-center", help="Cost center.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing model.")] = False,
    dry_run: DryRunOpt = False,
    commit: CommitOpt = False,
    root: RootOpt = None,
    fmt: FormatOpt = ReportFormat.text,
) -> None:
    """Write catalog/models/NAME.yaml from flags, with the catalog's conventions as defaults.

    Weights are expected at <s3|gs>://BUCKET/<repo>/<revision>/ on each cloud.
    """
    from llmgen.lifecycle.verbs import ModelSpec, new_model

    _no_commit_on_dry_run(commit, dry_run)
    base = find_root(root)
    _commit_preflight(base, commit)
    spec = ModelSpec(
        name=name,
        repo=repo,
        revision=revision,
        gpu=gpu,
        gpu_count=gpu_count,
        nodes=nodes,
        params_b=params_b,
        task=task,
        image=image,
        dtype=dtype,
        quantization=quantization,
        max_model_len=max_model_len,
        weights_bucket=weights_bucket,
        weights_sha256=weights_sha256,
        team=team,
        cost_center=cost_center,
    )
    _lifecycle(base, new_model(base, spec, force=force, dry_run=dry_run), commit, fmt)
