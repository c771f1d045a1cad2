"""The pipeline commands: validate, render, diff, verify, schema, commit,
secrets check, status, plan. Each parses its options and calls the library."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llmgen.cli import report
from llmgen.cli.app import ClusterOpt, EnvOpt, RootOpt, app, echo, find_root, finish, handled


@app.command("validate")
@handled
def validate_cmd(
    root: RootOpt = None,
    fmt: Annotated[str, typer.Option("--format", help="text | json | github")] = "text",
) -> None:
    """Check every catalog file: schemas, cross-document rules, then what the plan can place."""
    from llmgen.plan.check import validate_with_plan

    result, _ = validate_with_plan(find_root(root))
    summary = ("OK: " if result.ok else "") + report.summary(result.diagnostics)
    finish(result.diagnostics, fmt, result.ok, summary)


@app.command("render")
@handled
def render_cmd(
    root: RootOpt = None,
    env: EnvOpt = None,
    cluster: ClusterOpt = None,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 if generated/ is stale; write nothing.")
    ] = False,
    fmt: Annotated[str, typer.Option("--format", help="text | json | github")] = "text",
) -> None:
    """Render generated/ from the catalog (atomically), or check it is fresh."""
    from llmgen.render import pipeline

    base = find_root(root)
    if check:
        r = pipeline.check(base, env, cluster)
        if r.diff.empty:
            echo(f"generated/ is up to date ({len(r.files)} files)")
            raise typer.Exit(0)
        echo("generated/ is stale; run 'llmgen render':")
        for kind, paths in (
            ("added", r.diff.added),
            ("changed", r.diff.changed),
            ("removed", r.diff.removed),
        ):
            for p in paths:
                echo(f"  {kind}: {p}")
        raise typer.Exit(1)
    outcome = pipeline.render(base, env, cluster)
    echo(report.diagnostics(outcome.warnings, fmt))
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
    fmt: Annotated[str, typer.Option("--format", help="text | markdown | json (--base)")] = "text",
    base: Annotated[
        str | None,
        typer.Option("--base", help="Summarise the catalog changes since this git ref (a PR)."),
    ] = None,
) -> None:
    """Show what a re-render would change, per resource, then as a unified diff.

    With --base REF: a pull-request summary instead: models added, removed and
    changed per environment and cluster, GPU and cost deltas, then resources.
    """
    from llmgen.gitops.diff import format_changes, resource_changes
    from llmgen.render import pipeline

    if base is not None:
        from llmgen.gitops.prsummary import pr_summary
        from llmgen.gitops.prsummaryview import format_summary

        echo(format_summary(pr_summary(find_root(root), base, env, cluster), fmt).rstrip("\n"))
        return
    r = pipeline.check(find_root(root), env, cluster)
    changes = resource_changes(r.old, r.files)
    echo(format_changes(changes, pipeline.unified_diff(r), fmt))


@app.command("verify")
@handled
def verify_cmd(
    root: RootOpt = None,
    crd_schemas: Annotated[
        Path | None,
        typer.Option(
            "--crd-schemas",
            envvar="LLMGEN_CRD_SCHEMAS",
            help="kubeconform-layout folder of CRD JSON schemas.",
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
    fmt: Annotated[str, typer.Option("--format", help="text | json | github")] = "text",
) -> None:
    """Check generated/: schemas, CRD rules, API server rules, kustomize builds, Flux
    references, wiring across resources and layers."""
    from llmgen.verify.runner import catalog_facts, verify_tree

    base = find_root(root)
    if crd_schemas is None:
        raise typer.BadParameter(
            "pass --crd-schemas DIR or set LLMGEN_CRD_SCHEMAS", param_hint="--crd-schemas"
        )
    if not crd_schemas.is_dir():
        raise typer.BadParameter(f"{crd_schemas} is not a folder", param_hint="--crd-schemas")
    if kubernetes_version is not None:
        from llmgen.verify.schemas import core_schema_dir

        try:
            core_schema_dir(kubernetes_version)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--kubernetes-version") from exc
    result = verify_tree(
        base,
        crd_schemas,
        kubernetes_version=kubernetes_version,
        kustomize=kustomize,
        clusters=catalog_facts(base),
    )
    summary = "\n".join(
        [
            *result.stats.lines(),
            f"{'OK' if result.ok else 'FAILED'}: {result.documents} documents "
            f"(Kubernetes {result.kubernetes_schemas} schemas), "
            f"{result.folders} kustomize folders; " + report.summary(result.diagnostics),
        ]
    )
    finish(result.diagnostics, fmt, result.ok, summary)


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
) -> None:
    """Render, then commit generated/ (only) with a per-cluster summary.

    Exit 0 when committed or when there is nothing to commit; 1 on an invalid
    catalog, hand edits in generated/ (without --force) or a failed git step.
    """
    from llmgen.gitops.commit import commit

    result = commit(find_root(root), message, branch, push, remote, force)
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
    fmt: Annotated[str, typer.Option("--format", help="text | json | github")] = "text",
) -> None:
    """Every secret and key the environment's models reference exists in its backend."""
    from llmgen.secrets.check import check_environment

    result = check_environment(find_root(root), env)
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
    fmt: Annotated[str, typer.Option("--format", help="table | json")] = "table",
) -> None:
    """Live state per cluster: Flux readiness, model replicas, applied revision.

    Uses each cluster's kubeContext. Exit 0 when every cluster was reached and
    everything on it is ready (stopped environments count as ready), else 1.
    """
    from llmgen.gitops.status import status
    from llmgen.gitops.statusview import to_json, to_table

    if fmt not in ("table", "json"):
        raise typer.BadParameter("expected table or json", param_hint="--format")
    report = status(find_root(root), env, cluster, kubeconfig)
    echo(to_json(report) if fmt == "json" else to_table(report))
    raise typer.Exit(0 if report.ok else 1)


@app.command("plan")
@handled
def plan_cmd(
    root: RootOpt = None,
    env: EnvOpt = None,
    fmt: Annotated[str, typer.Option("--format", help="text | json | markdown")] = "text",
) -> None:
    """Capacity and cost per environment, cluster and model, against the budget."""
    from llmgen.cli.planview import FORMATS, plan_command

    if fmt not in FORMATS:
        raise typer.BadParameter(f"expected one of {', '.join(FORMATS)}", param_hint="--format")
    echo(plan_command(find_root(root), env, fmt))
