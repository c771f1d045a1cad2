"""Nothing the catalog asks for is dropped silently when the pools fill up.

The shipped catalog is grown, copy by copy of the 8B model, until prod's
`l4-x1` pools (4 clusters × maxNodes 12 = 48 one-GPU nodes) are full: every
minimum that no pool holds is an error at the environment's model entry,
every maximum the pools cap is a warning naming the cap, the cause and the
number, and `render` refuses what `validate` refuses, leaving generated/
untouched.
"""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from llmgen.cli import app
from llmgen.plan.check import validate_with_plan

SOURCE = "catalog/models/llama-3-1-8b-instruct.yaml"
PROD = "catalog/environments/prod.yaml"


def grow(root: Path, copies: int, low: int, high: int) -> list[str]:
    """Add `copies` copies of the 8B model to prod, each with replicas low..high."""
    text = (root / SOURCE).read_text()
    names = []
    entries = []
    for k in range(copies):
        name = f"llama-copy-{k:02d}"
        copy = (
            text.replace("name: llama-3-1-8b-instruct", f"name: {name}")
            .replace("servedModelName: llama-3.1-8b-instruct", f"servedModelName: {name}")
            .replace("routePrefix: /v1/llama-3.1-8b", f"routePrefix: /v1/{name}")
            # its LoRA adapters' names are requested as `model`: unique per copy too
            .replace("- name: llama-3.1-8b-", f"- name: {name}-")
        )
        (root / f"catalog/models/{name}.yaml").write_text(copy)
        entries.append(f"    - name: {name}\n      replicas: {{min: {low}, max: {high}}}\n")
        names.append(name)
    # At the end of spec.models (blocks such as `dns:` may follow it).
    env = root / PROD
    lines = env.read_text().splitlines(keepends=True)
    end = lines.index("  models:\n") + 1
    while end < len(lines) and lines[end].startswith("    "):
        end += 1
    env.write_text("".join(lines[:end] + entries + lines[end:]))
    return names


def test_minimums_no_pool_holds_are_errors_at_the_model_entry(scratch_repo: Path) -> None:
    # prod already keeps llama-8b and bge-m3 at 4 each (one per cluster) on l4-x1:
    # 48 − 8 = 40 nodes hold the minimums of 10 copies at 4; copies 10 and 11 fit nowhere.
    grow(scratch_repo, 12, 4, 4)
    result, _ = validate_with_plan(scratch_repo)
    assert not result.ok
    errors = [str(d) for d in result.errors]
    # prod's models[6] is the first copy: copies 10 and 11 are models[16] and models[17].
    assert [d.path for d in result.errors] == [
        "spec.models[16].replicas.min",
        "spec.models[17].replicas.min",
    ]
    assert errors[0].startswith(f"{PROD}:")
    assert (
        "4 of the 4 minimum replicas of 'llama-copy-10' fit in no node pool (prod-aws-use1/l4-x1: "
        "12 of 12 nodes used, prod-aws-usw2/l4-x1: 12 of 12 nodes used, prod-gcp-euw4/l4-x1: "
        "12 of 12 nodes used, prod-gcp-usc1/l4-x1: 12 of 12 nodes used); raise maxNodes, add a "
        "pool or lower the minimum"
    ) in errors[0]
    # The error points at the line of the entry's `min:`.
    line = int(errors[0].split(":")[1])
    assert "name: llama-copy-10" in (scratch_repo / PROD).read_text().splitlines()[line - 2]


def test_maxima_the_pools_cap_are_warnings_naming_the_cap(scratch_repo: Path) -> None:
    # Ten copies at 1 per cluster minimum fit (40 nodes); their maxima of 8 cannot all.
    grow(scratch_repo, 10, 4, 8)
    result, _ = validate_with_plan(scratch_repo)
    assert result.ok, [str(d) for d in result.errors]
    capped = [d for d in result.warnings if "by node pool capacity" in d.message]
    assert capped, [str(d) for d in result.warnings]
    for d in capped:
        assert d.path.endswith(".replicas.max")
        assert re.search(r"capped \d+→\d+ by node pool capacity \(prod-aws-use1/l4-x1: ", d.message)
    # The maxima the plan does give add up to the 48 nodes of the four pools.
    assert "12 of 12 nodes used" in capped[-1].message


def test_render_refuses_what_validate_refuses(scratch_repo: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["render", "--root", str(scratch_repo)])
    assert first.exit_code == 0, first.output
    generated = scratch_repo / "generated"
    before = {p: p.read_bytes() for p in generated.rglob("*") if p.is_file()}
    grow(scratch_repo, 12, 4, 4)
    validate = runner.invoke(app, ["validate", "--root", str(scratch_repo)])
    assert validate.exit_code == 1
    assert "spec.models[16].replicas.min: 4 of the 4 minimum replicas" in validate.output
    render = runner.invoke(app, ["render", "--root", str(scratch_repo)])
    assert render.exit_code == 1
    assert "spec.models[16].replicas.min: 4 of the 4 minimum replicas" in render.output
    after = {p: p.read_bytes() for p in generated.rglob("*") if p.is_file()}
    assert after == before
