"""The pipeline commands: validate, render, diff, verify, schema, commit,
secrets check, bootstrap, status, plan. Each parses its options and calls the library."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from llmgen.cli import progress, report
from llmgen.cli.app import (
    CLUSTER_COMPLETION,
    CheckFormat,
    ClusterOpt,
    DiffFormat,
    EnvOpt,
    PlanFormat,
    ReportFormat,
    RootOpt,
    StatusFormat,
    app,
    echo,
    emit_json,
    find_root,
    finish,
    format_option,
    handled,
    quiet,
)

CheckFormatOpt = Annotated[CheckFormat, format_option(CheckFormat)]
ReportFormatOpt = Annotated[ReportFormat, format_option(ReportFormat)]


@app.command("validate")
@handled
def validate_cmd(
    root: RootOpt = None,
    fmt: CheckFormatOpt = CheckFormat.text,
) -> None:
    """Check every catalog file: schemas, cross-document rules, then what the plan can place."""
    from llmgen.plan.check import validate_with_plan
    from llmgen.resources import drift

    base = find_root(root)
    result, _ = validate_with_plan(base)
    notes = drift(base)
    if fmt == "text":
        for note in notes:
            echo(f"note: {note}", err=True)
    summary = ("OK: " if result.ok else "") + report.summary(result.diagnostics)
    finish(result.diagnostics, fmt, result.ok, summary, {"notes": notes})


@app.command("render")
@handled
def render_cmd(
    root: RootOpt = None,
    env: EnvOpt = None,
    cluster: ClusterOpt = None,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 if generated/ is stale; write nothing.")
    ] = False,
    fmt: ReportFormatOpt = ReportFormat.text,
) -> None:
    """Render generated/ from the catalog (atomically), or check it is fresh."""
    from llmgen.render import pipeline
    from llmgen.resources import drift

    base = find_root(root)
    if check:
        r = pipeline.check(base, env, cluster)
        stale = {
            "added": list(r.diff.added),
            "changed": list(r.diff.changed),
            "removed": list(r.diff.removed),
        }
        if fmt == "json":
            emit_json(r.diff.empty, {"files": len(r.files), **stale})
            raise typer.Exit(0 if r.diff.empty else 1)
        if r.diff.empty:
            echo(f"generated/ is up to date ({len(r.files)} files)")
            raise typer.Exit(0)
        echo("generated/ is stale; run 'llmgen render':")
        for kind, paths in stale.items():
            for p in paths:
                echo(f"  {kind}: {p}")
        raise typer.Exit(1)
    with progress.bar("render", progress.wanted(quiet=quiet())) as step:
        outcome = pipeline.render(base, env, cluster, progress=step)
    notes = drift(base)
    if fmt == "json":
        emit_json(
            True,
            {
                "notes": notes,
                "noop": outcome.noop,
                "documents": outcome.documents,
                "added": list(outcome.diff.added),
                "changed": list(outcome.diff.changed),
                "removed": list(outcome.diff.removed),
                "diagnostics": report.diagnostic_dicts(outcome.warnings),
            },
        )
        return
    echo(report.diagnostics(outcome.warnings, fmt))
    for note in notes:
        echo(f"note: {note}", err=True)
    if outcome.noop:
        echo("generated/ is up to date (inputs unchanged)")
    elif outcome.diff.empty:
        echo(f"generated/ is up to date ({outcome.documents} documents)")
    else:
        echo(f"rendered {outcome.documents} documents: {outcome.diff.summary()}")


@app.command("diff")
@handled
def diff_cmd(
    root: RootOpt = None,
    env: EnvOpt = None,
    cluster: ClusterOpt = None,
    fmt: Annotated[DiffFormat, format_option(DiffFormat)] = DiffFormat.text,
    base: Annotated[
        str | None,
        typer.Option("--base", help="Summarise the catalog changes since this git ref (a PR)."),
    ] = None,
    simulate: Annotated[
        bool,
        typer.Option(
            "--simulate",
            help="With --base: replay the same traffic against base and head (each --env).",
        ),
    ] = False,
) -> None:
    """Show what a re-render would change, per resource, then as a unified diff.

    With --base REF: a pull-request summary instead: models added, removed and
    changed per environment and cluster, GPU and cost deltas, then resources.
    With --simulate as well: a day of diurnal traffic replayed against the
    base's and the head's autoscaling (`llmgen simulate` defaults).
    """
    from llmgen.gitops.diff import format_changes, resource_changes
    from llmgen.render import pipeline

    if simulate and base is None:
        raise typer.BadParameter("--simulate needs --base", param_hint="--simulate")
    if base is not None:
        from llmgen.gitops.prsummary import pr_summary
        from llmgen.gitops.prsummaryview import format_summary

        summary = pr_summary(find_root(root), base, env, cluster)
        simulated = ""
        if simulate:
            from llmgen.cli.simulate import simulate_base

            simulated = simulate_base(find_root(root), base, env).rstrip("\n")
        if fmt == "json":
            data = json.loads(format_summary(summary, "json"))
            if simulate:
                data["simulation_markdown"] = simulated
            emit_json(True, data)
            return
        echo(format_summary(summary, fmt).rstrip("\n"))
        echo(simulated)
        return
    r = pipeline.check(find_root(root), env, cluster)
    changes = resource_changes(r.old, r.files)
    unified = pipeline.unified_diff(r)
    if fmt == "json":
        emit_json(
            True,
            {
                "changes": [
                    {
                        "cluster": c.cluster,
                        "change": c.change,
                        "kind": c.kind,
                        "namespace": c.namespace,
                        "name": c.name,
                    }
                    for c in changes
                ],
                "unified_diff": unified,
            },
        )
        return
    echo(format_changes(changes, unified, fmt))


@app.command("verify")
@handled
def verify_cmd(
    root: RootOpt = None,
    crd_schemas: Annotated[
        list[Path] | None,
        typer.Option(
            "--crd-schemas",
            help="kubeconform-layout folder of CRD JSON schemas; repeat for several "
            "(a kind's schema comes from the first that has it). Default: "
            "LLMGEN_CRD_SCHEMAS, folders separated like PATH.",
        ),
    ] = None,
    kustomize: Annotated[
        bool,
        typer.Option("--kustomize/--no-kustomize", help="Run kustomize build on every folder."),
    ] = True,
    kubernetes_version: Annotated[
        str | None,
        typer.Option(
            "--kubernetes-version",
            help="Check every folder against this Kubernetes minor's schemas "
            "(default: each cluster's kubernetesVersion).",
        ),
    ] = None,
    fmt: CheckFormatOpt = CheckFormat.text,
) -> None:
    """Check generated/: schemas, CRD rules, API server rules, kustomize builds, Flux
    references, wiring across resources and layers."""
    from llmgen.verify.runner import catalog_facts, verify_tree
    from llmgen.verify.schemas import crd_folders_from_env

    base = find_root(root)
    folders = crd_schemas or crd_folders_from_env(os.environ.get("LLMGEN_CRD_SCHEMAS", ""))
    if not folders:
        raise typer.BadParameter(
            "pass --crd-schemas DIR (repeatable) or set LLMGEN_CRD_SCHEMAS",
            param_hint="--crd-schemas",
        )
    for folder in folders:
        if not folder.is_dir():
            raise typer.BadParameter(f"{folder} is not a folder", param_hint="--crd-schemas")
    if kubernetes_version is not None:
        from llmgen.verify.schemas import core_schema_dir

        try:
            core_schema_dir(kubernetes_version)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--kubernetes-version") from exc
    with progress.bar("verify", progress.wanted(quiet=quiet())) as step:
        result = verify_tree(
            base,
            folders,
            kubernetes_version=kubernetes_version,
            kustomize=kustomize,
            clusters=catalog_facts(base),
            progress=step,
        )
    summary = "\n".join(
        [
            *result.stats.lines(),
            f"{'OK' if result.ok else 'FAILED'}: {result.documents} documents "
            f"(Kubernetes {result.kubernetes_schemas} schemas), "
            f"{result.folders} kustomize folders; " + report.summary(result.diagnostics),
        ]
    )
    finish(
        result.diagnostics,
        fmt,
        result.ok,
        summary,
        {"documents": result.documents, "folders": result.folders},
    )


@app.command("build")
@handled
def build_cmd(
    cluster: Annotated[
        str,
        typer.Option("--cluster", help="The cluster to build.", autocompletion=CLUSTER_COMPLETION),
    ],
    root: RootOpt = None,
    with_flux: Annotated[
        bool, typer.Option("--with-flux", help="Start with the cluster folder's Flux objects.")
    ] = False,
) -> None:
    """Print the fully built stream of a cluster (for Argo CD, kubectl diff, dry runs).

    Each Flux Kustomization's path is built with the kustomize inside kubectl,
    dependencies first, exactly as generated/ holds it (render first).
    """
    from llmgen.gitops.build import build_cluster

    typer.echo(build_cluster(find_root(root), cluster, with_flux), nl=False)


@app.command("schema")
@handled
def schema_cmd(
    kind: Annotated[
        str | None, typer.Argument(help="Cluster, Environment, Model, GpuCatalog or Platform.")
    ] = None,
    write: Annotated[
        Path | None, typer.Option("--write", help="Write every schema into this folder.")
    ] = None,
    root: RootOpt = None,
) -> None:
    """Print a catalog kind's JSON Schema, or write them all to a folder."""
    from llmgen.resources import schemas_dir

    base = None
    try:
        base = find_root(root)
    except typer.BadParameter:
        base = Path.cwd()
    folder = schemas_dir(base)
    files = sorted(folder.glob("*.schema.json"))
    if write is not None:
        write.mkdir(parents=True, exist_ok=True)
        for f in files:
            (write / f.name).write_bytes(f.read_bytes())
        echo(f"wrote {len(files)} schemas to {write}")
        return
    if kind is None:
        for f in files:
            echo(f.name.removesuffix(".schema.json"))
        return
    target = folder / f"{kind.lower()}.schema.json"
    if not target.is_file():
        raise typer.BadParameter(f"no schema for kind {kind!r}", param_hint="KIND")
    echo(target.read_text().rstrip("\n"))


@app.command("commit")
@handled
def commit_cmd(
    root: RootOpt = None,
    message: Annotated[
        str | None, typer.Option("--message", "-m", help="Subject line (default: a summary).")
    ] = None,
    branch: Annotated[
        str | None, typer.Option("--branch", help="Commit on this branch; created if missing.")
    ] = None,
    push: Annotated[bool, typer.Option("--push", help="Push the branch after committing.")] = False,
    remote: Annotated[str, typer.Option("--remote", help="Remote to push to.")] = "origin",
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite hand edits in generated/.")
    ] = False,
    fmt: ReportFormatOpt = ReportFormat.text,
) -> None:
    """Render, then commit generated/ (only) with a per-cluster summary.

    Exit 0 when committed or when there is nothing to commit; 1 on an invalid
    catalog, hand edits in generated/ (without --force) or a failed git step.
    """
    from llmgen.gitops.commit import commit

    result = commit(find_root(root), message, branch, push, remote, force)
    if fmt == "json":
        emit_json(
            True,
            {
                "committed": result.committed,
                "commit": result.commit,
                "branch": result.branch,
                "created_branch": result.created_branch,
                "pushed": result.pushed,
                "remote": result.remote if result.pushed else None,
                "message": result.message,
                "overwritten": list(result.overwritten),
                "notes": list(result.notes),
                "diagnostics": report.diagnostic_dicts(result.warnings),
            },
        )
        return
    echo(report.diagnostics(result.warnings))
    for note in result.notes:
        echo(f"note: {note}", err=True)
    if result.overwritten:
        n = len(result.overwritten)
        echo(f"--force: overwrote {n} hand-edited file(s) in generated/", err=True)
    if not result.committed:
        echo("nothing to commit: generated/ already matches HEAD")
        return
    where = result.branch or "detached HEAD"
    created = " (new branch)" if result.created_branch else ""
    echo(f"committed {(result.commit or '')[:12]} on {where}{created}")
    echo(result.message.rstrip("\n"))
    if result.pushed:
        echo(f"pushed {where} to {result.remote}")


secrets_app = typer.Typer(
    help="Secret backends: check that referenced secrets exist.", no_args_is_help=True
)
app.add_typer(secrets_app, name="secrets")


@secrets_app.command("check")
@handled
def secrets_check_cmd(
    env: Annotated[str, typer.Option("--env", help="The environment whose secrets to check.")],
    root: RootOpt = None,
    fmt: CheckFormatOpt = CheckFormat.text,
) -> None:
    """Every secret and key the environment's models reference exists in its backend."""
    from llmgen.secrets.check import check_environment

    result = check_environment(find_root(root), env)
    finish(result.diagnostics, fmt, result.ok, result.summary())


@app.command("bootstrap")
@handled
def bootstrap_cmd(
    cluster: Annotated[str, typer.Argument(help="A cluster of catalog/clusters/.")],
    root: RootOpt = None,
) -> None:
    """Write clusters/CLUSTER/llmgen.yaml, the sync object beside Flux's bootstrap files."""
    from llmgen.lifecycle.scaffold.bootstrap import bootstrap

    done = bootstrap(find_root(root), cluster)
    echo(f"{'wrote' if done.written else 'unchanged:'} {done.path}")
    echo("next:\n" + "\n".join(f"  {c}" for c in done.commands))
weights_app = typer.Typer(
    help="Weights mirrors: check what they hold against the catalog.", no_args_is_help=True
)
app.add_typer(weights_app, name="weights")


@weights_app.command("check")
@handled
def weights_check_cmd(
    env: Annotated[str, typer.Option("--env", help="The environment whose mirrors to check.")],
    root: RootOpt = None,
    fmt: Annotated[str, typer.Option("--format", help="text | json | github")] = "text",
) -> None:
    """Each pinned model's mirror holds its manifest, every listed file, under the named key.

    Reads S3 and Cloud Storage with the SDKs' standard credentials; prints
    object names and hashes only.
    """
    from llmgen.weights.check import check_weights

    result = check_weights(find_root(root), env)
    finish(result.diagnostics, fmt, result.ok, result.summary())


@app.command("status")
@handled
def status_cmd(
    root: RootOpt = None,
    env: EnvOpt = None,
    cluster: ClusterOpt = None,
    kubeconfig: Annotated[
        Path | None,
        typer.Option("--kubeconfig", help="Kubeconfig (default: $KUBECONFIG, ~/.kube/config)."),
    ] = None,
    fmt: Annotated[StatusFormat, format_option(StatusFormat)] = StatusFormat.table,
) -> None:
    """Live state per cluster: Flux readiness, model replicas, applied revision.

    Uses each cluster's kubeContext. Exit 0 when every cluster was reached and
    everything on it is ready (stopped environments count as ready), else 1.
    """
    from llmgen.gitops.status import status
    from llmgen.gitops.statusview import to_json, to_table

    live = status(find_root(root), env, cluster, kubeconfig)
    if fmt == "json":
        data = json.loads(to_json(live))
        data.pop("ok", None)  # the envelope carries it
        emit_json(live.ok, data)
    else:
        echo(to_table(live))
    raise typer.Exit(0 if live.ok else 1)


@app.command("plan")
@handled
def plan_cmd(
    root: RootOpt = None,
    env: EnvOpt = None,
    fmt: Annotated[PlanFormat, format_option(PlanFormat)] = PlanFormat.text,
) -> None:
    """Capacity and cost per environment, cluster and model, against the budget."""
    from llmgen.cli.planview import plan_command

    text = plan_command(find_root(root), env, fmt)
    if fmt == "json":
        emit_json(True, json.loads(text))
    else:
        echo(text)
