"""`llmgen build --cluster C`: the cluster's resources, built by the real kustomize
inside kubectl, in Flux's dependsOn order (issue 17)."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from llmgen.cli.main import app
from llmgen.gitops.build import Layer, apply_order
from llmgen.render import pipeline

runner = CliRunner()
CLUSTER = "dev-aws-use2"


def _ids(docs: list[dict[str, object]]) -> list[tuple[str, str, str]]:
    out = []
    for d in docs:
        meta = d["metadata"]
        assert isinstance(meta, dict)
        out.append((str(d["kind"]), str(meta.get("namespace", "")), str(meta["name"])))
    return out


def test_build_prints_every_layer_resource_in_apply_order(scratch_repo: Path) -> None:
    pipeline.render(scratch_repo)
    result = runner.invoke(app, ["build", "--cluster", CLUSTER, "--root", str(scratch_repo)])
    assert result.exit_code == 0, result.output
    docs = [d for d in yaml.safe_load_all(result.stdout) if d is not None]

    folder = scratch_repo / "generated/clusters" / CLUSTER
    rendered = []
    for path in sorted(folder.rglob("*.yaml")):
        if path.parent == folder or path.name == "kustomization.yaml":
            continue  # the Flux objects themselves, and kustomize's own files
        rendered += [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert sorted(_ids(docs)) == sorted(_ids(rendered))

    # Sections follow dependsOn: a layer's section comes after its dependencies'.
    heads = [line for line in result.stdout.splitlines() if line.startswith("# Flux Kustomization")]
    flux = {
        d["metadata"]["name"]: d
        for p in folder.glob("kustomization-*.yaml")
        for d in [yaml.safe_load(p.read_text())]
    }
    assert len(heads) == len(flux)
    order = [h.split(": ")[0].rsplit("/", 1)[1] for h in heads]
    for name, doc in flux.items():
        for dep in doc["spec"].get("dependsOn", []):
            assert order.index(dep["name"]) < order.index(name), (dep, name)
    assert heads[0] == (
        f"# Flux Kustomization flux-system/{order[0]}: {flux[order[0]]['spec']['path']}"
    )


def test_build_with_flux_starts_with_the_flux_objects(scratch_repo: Path) -> None:
    pipeline.render(scratch_repo)
    args = ["build", "--cluster", CLUSTER, "--with-flux", "--root", str(scratch_repo)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    first = next(d for d in yaml.safe_load_all(result.stdout) if d is not None)
    assert first["apiVersion"].startswith(("source.toolkit.fluxcd.io/", "kustomize.toolkit"))


def test_build_of_an_unknown_cluster_is_a_usage_error(scratch_repo: Path) -> None:
    pipeline.render(scratch_repo)
    result = runner.invoke(app, ["build", "--cluster", "nope", "--root", str(scratch_repo)])
    assert result.exit_code == 2
    assert result.output.startswith(
        "llmgen: no rendered cluster 'nope' in generated/clusters (rendered: dev-aws-use2, "
    )


def test_apply_order_puts_dependencies_first_and_refuses_cycles() -> None:
    a, b, c = Layer("a", "", "", ("c",)), Layer("b", "", "", ()), Layer("c", "", "", ("b",))
    assert [x.name for x in apply_order([a, b, c])] == ["b", "c", "a"]
    import pytest

    from llmgen.gitops.build import BuildError

    with pytest.raises(BuildError, match="dependsOn cycle: a -> c -> a"):
        apply_order([a, Layer("c", "", "", ("a",))])
