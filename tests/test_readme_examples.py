"""The README's validate examples are what validate prints (a capped and a refused placement)."""

from __future__ import annotations

from pathlib import Path

from llmgen.plan.check import validate_with_plan

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
MIXTRAL = "    - name: mixtral-8x7b-instruct\n      replicas: {min: 2, max: 4}"


def test_the_capped_example_is_the_shipped_catalogs() -> None:
    result, _ = validate_with_plan(REPO)
    assert result.warnings
    for d in result.diagnostics:
        assert f"{d}\n" in README, d


def test_the_refused_example_is_what_validate_says(scratch_repo: Path) -> None:
    env = scratch_repo / "catalog/environments/prod.yaml"
    text = env.read_text()
    assert text.count(MIXTRAL) == 1
    env.write_text(text.replace(MIXTRAL, MIXTRAL.replace("{min: 2, max: 4}", "{min: 14, max: 14}")))
    result, _ = validate_with_plan(scratch_repo)
    assert len(result.errors) == 1
    for d in result.diagnostics:
        assert f"{d}\n" in README, d
