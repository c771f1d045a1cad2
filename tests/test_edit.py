"""Catalog edits keep every line they do not change, byte for byte.

Each test edits a real catalog file (the shipped ones, or one written with
the formatting people actually use: flow maps with inner spaces, quoted
strings, four-space indentation, blank lines, comments between list items,
CRLF line ends, no final newline) and states exactly which lines change;
every other line must come out byte-identical.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest
from ruamel.yaml.comments import CommentedMap

from llmgen.errors import CatalogError
from llmgen.lifecycle import verbs as lifecycle
from llmgen.lifecycle.edit import (
    atomic_write,
    dump,
    edit_text,
    guess_indent,
    load_round_trip,
    new_yaml,
    plain,
)
from llmgen.lifecycle.linemerge import merge

# An environment as a person might write it: four-space indentation with
# sequences flush under their key, spaced flow maps, quoted strings, blank
# lines and comments that introduce the item below them.
ODD_ENV = """\
# yaml-language-server: $schema=../../schemas/environment.schema.json
# Development: the formatting here is deliberate.
apiVersion: "llmgen.io/v1alpha1"
kind: Environment
metadata:
    name: 'dev'
spec:
    clusters: [ dev-aws-use2 ]   # one cluster for now
    domain: "llm.dev.example.com"
    requirePinned: false

    # Budget: keep it small.
    budget: { monthlyUSD: 5000, alertThresholds: [ 80, 100 ] }
    secretStores:
        vault: {server: "https://vault.example.com:8200", path: llm/dev, role: llmgen-dev}
    routing:
        policy: failover
    models:
    - name: llama-3-1-8b-instruct
      replicas: { min: 1, max: 2 }
    # The quantised 32B: only when someone asks for it.
    - name: qwen2-5-32b-instruct-awq
      replicas:
        min: 0
        max: 1

    # Embeddings for search.
    - name: bge-m3   # owned by search
      replicas: {min: 0, max: 1}
# end of environment
"""


def hunks(before: str, after: str) -> list[tuple[list[str], list[str]]]:
    """(removed lines, added lines) of every change; all other lines are byte-equal."""
    a, b = before.splitlines(keepends=True), after.splitlines(keepends=True)
    ops = difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
    kept_a = [line for tag, i1, i2, _, _ in ops if tag == "equal" for line in a[i1:i2]]
    kept_b = [line for tag, _, _, j1, j2 in ops if tag == "equal" for line in b[j1:j2]]
    assert kept_a == kept_b  # the untouched lines, byte for byte
    return [(a[i1:i2], b[j1:j2]) for tag, i1, i2, j1, j2 in ops if tag != "equal"]


@pytest.fixture
def odd_repo(scratch_repo: Path) -> Path:
    (scratch_repo / "catalog" / "environments" / "dev.yaml").write_text(ODD_ENV, encoding="utf-8")
    return scratch_repo


def dev(root: Path) -> str:
    return (root / "catalog" / "environments" / "dev.yaml").read_text(encoding="utf-8")


def test_the_odd_file_is_a_valid_catalog_file(odd_repo: Path) -> None:
    # Otherwise every later test would only prove that invalid edits are refused.
    from llmgen.catalog.validate import validate

    result = validate(odd_repo)
    assert result.ok, [str(d) for d in result.errors]
    assert result.catalog is not None
    assert [m.name for m in result.catalog.environments["dev"].models][0] == "llama-3-1-8b-instruct"


def test_stop_adds_one_line_above_the_comment_that_introduces_the_budget(odd_repo: Path) -> None:
    lifecycle.stop(odd_repo, "dev")
    after = dev(odd_repo)
    assert hunks(ODD_ENV, after) == [([], ["    suspended: true\n"])]
    assert "    requirePinned: false\n    suspended: true\n\n    # Budget" in after


def test_stop_then_start_gives_back_the_same_bytes(odd_repo: Path) -> None:
    lifecycle.stop(odd_repo, "dev")
    lifecycle.start(odd_repo, "dev")
    assert dev(odd_repo) == ODD_ENV


def test_stopping_clusters_one_by_one_edits_one_flow_list(scratch_repo: Path) -> None:
    path = scratch_repo / "catalog" / "environments" / "prod.yaml"
    before = path.read_text(encoding="utf-8")
    lifecycle.stop(scratch_repo, "prod", ["prod-gcp-euw4"])
    once = path.read_text(encoding="utf-8")
    assert hunks(before, once) == [([], ["  suspendedClusters: [prod-gcp-euw4]\n"])]
    lifecycle.stop(scratch_repo, "prod", ["prod-aws-usw2"])
    twice = path.read_text(encoding="utf-8")
    assert hunks(once, twice) == [
        (
            ["  suspendedClusters: [prod-gcp-euw4]\n"],
            ["  suspendedClusters: [prod-gcp-euw4, prod-aws-usw2]\n"],
        )
    ]


def test_deploy_appends_an_entry_before_the_trailing_comment(odd_repo: Path) -> None:
    spec = lifecycle.ModelSpec("qwen2-5-7b", "Qwen/Qwen2.5-7B-Instruct", "a" * 40, "L4")
    lifecycle.new_model(odd_repo, spec)
    lifecycle.deploy(odd_repo, "qwen2-5-7b", "dev", min_replicas=1, max_replicas=1)
    after = dev(odd_repo)
    # The new entry is indented like its siblings (dash flush under `models:`).
    assert hunks(ODD_ENV, after) == [
        ([], ["    - name: qwen2-5-7b\n", "      replicas: {min: 1, max: 1}\n"])
    ]
    assert after.endswith("replicas: {min: 1, max: 1}\n# end of environment\n")


def test_deploy_updates_a_spaced_flow_map_on_its_own_line(odd_repo: Path) -> None:
    lifecycle.deploy(odd_repo, "llama-3-1-8b-instruct", "dev", max_replicas=3)
    assert hunks(ODD_ENV, dev(odd_repo)) == [
        (["      replicas: { min: 1, max: 2 }\n"], ["      replicas: {min: 1, max: 3}\n"])
    ]


def test_deploy_updates_a_block_map_at_the_users_indentation(odd_repo: Path) -> None:
    lifecycle.deploy(odd_repo, "qwen2-5-32b-instruct-awq", "dev", max_replicas=2)
    assert hunks(ODD_ENV, dev(odd_repo)) == [(["        max: 1\n"], ["        max: 2\n"])]


def test_deploy_adds_a_key_to_an_entry_above_the_next_entrys_comment(odd_repo: Path) -> None:
    lifecycle.deploy(odd_repo, "llama-3-1-8b-instruct", "dev", clusters=["dev-aws-use2"])
    after = dev(odd_repo)
    assert hunks(ODD_ENV, after) == [([], ["      clusters: [dev-aws-use2]\n"])]
    assert "max: 2 }\n      clusters: [dev-aws-use2]\n    # The quantised 32B" in after


def test_undeploy_takes_the_items_own_comment_and_keeps_the_next_ones(odd_repo: Path) -> None:
    lifecycle.undeploy(odd_repo, "qwen2-5-32b-instruct-awq", "dev")
    assert hunks(ODD_ENV, dev(odd_repo)) == [
        (
            [
                "    # The quantised 32B: only when someone asks for it.\n",
                "    - name: qwen2-5-32b-instruct-awq\n",
                "      replicas:\n",
                "        min: 0\n",
                "        max: 1\n",
            ],
            [],
        )
    ]


def test_undeploy_of_the_first_item_keeps_the_comment_of_the_second(odd_repo: Path) -> None:
    lifecycle.undeploy(odd_repo, "llama-3-1-8b-instruct", "dev")
    assert hunks(ODD_ENV, dev(odd_repo)) == [
        (["    - name: llama-3-1-8b-instruct\n", "      replicas: { min: 1, max: 2 }\n"], [])
    ]


def test_crlf_files_stay_crlf_and_a_missing_final_newline_stays_missing() -> None:
    text = ODD_ENV.replace("\n", "\r\n").removesuffix("\r\n")

    def stop(doc: CommentedMap) -> None:
        doc["spec"].insert(3, "suspended", True)

    after = edit_text(text, stop)
    assert hunks(text, after) == [([], ["    suspended: true\r\n"])]
    assert not after.endswith("\n")
    assert after.count("\n") == after.count("\r\n")


def test_shipped_environments_take_every_edit_without_touching_other_lines(
    scratch_repo: Path,
) -> None:
    envs = scratch_repo / "catalog" / "environments"
    for path in sorted(envs.glob("*.yaml")):
        name = path.stem
        original = path.read_text(encoding="utf-8")
        lifecycle.stop(scratch_repo, name)
        assert [len(r) + len(a) for r, a in hunks(original, path.read_text())] == [1]
        lifecycle.start(scratch_repo, name)
        assert path.read_text(encoding="utf-8") == original


def test_refused_edit_reports_the_error_and_changes_no_byte_or_mtime(odd_repo: Path) -> None:
    path = odd_repo / "catalog" / "environments" / "dev.yaml"
    stat = path.stat()
    with pytest.raises(CatalogError) as err:
        lifecycle.deploy(odd_repo, "llama-3-1-8b-instruct", "dev", min_replicas=5, max_replicas=1)
    messages = [str(d) for d in err.value.diagnostics]
    assert any(
        m.startswith("catalog/environments/dev.yaml:") and "greater than" in m for m in messages
    ), messages
    assert path.read_text(encoding="utf-8") == ODD_ENV
    assert path.stat().st_mtime_ns == stat.st_mtime_ns
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "dev.yaml",
        "prod.yaml",
        "staging.yaml",
    ]


def test_a_refused_edit_leaves_every_catalog_file_alone(scratch_repo: Path) -> None:
    # dev's only cluster has no H100 pool for the 70B model: refused.
    before = {p: p.read_bytes() for p in (scratch_repo / "catalog").rglob("*.yaml")}
    with pytest.raises(CatalogError):
        lifecycle.deploy(scratch_repo, "llama-3-3-70b-instruct", "dev")
    assert {p: p.read_bytes() for p in (scratch_repo / "catalog").rglob("*.yaml")} == before


def test_indentation_is_measured_from_the_file() -> None:
    _, data = load_round_trip(ODD_ENV, "dev.yaml")
    assert guess_indent(data, ODD_ENV.splitlines()) == (4, 2, 0)
    shipped = (Path(__file__).resolve().parents[1] / "catalog/environments/prod.yaml").read_text()
    _, data = load_round_trip(shipped, "prod.yaml")
    assert guess_indent(data, shipped.splitlines()) == (2, 4, 2)


def test_merge_without_an_edit_is_the_original() -> None:
    yaml = new_yaml((4, 2, 0))
    base = dump(yaml, yaml.load(ODD_ENV))
    assert base != ODD_ENV  # ruamel alone would re-space the flow maps
    assert merge(ODD_ENV, base, base) == ODD_ENV


def test_merged_text_parses_to_the_edited_tree() -> None:
    def edit(doc: CommentedMap) -> None:
        doc["spec"]["models"][1]["replicas"]["min"] = 1
        del doc["spec"]["models"][2]
        doc["spec"]["routing"]["policy"] = "latency"

    after = edit_text(ODD_ENV, edit)
    _, data = load_round_trip(ODD_ENV, "x")
    edit(data)
    assert plain(new_yaml().load(after)) == plain(data)
    assert "    routing:\n        policy: latency\n" in after


def test_atomic_write_keeps_the_files_mode(tmp_path: Path) -> None:
    path = tmp_path / "env.yaml"
    path.write_text("a: 1\n")
    path.chmod(0o640)
    atomic_write(path, "a: 2\n")
    assert path.read_text() == "a: 2\n"
    assert path.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["env.yaml"]  # no temporary file left
