"""Flux bootstrapped at clusters/<cluster>, beside generated/ (issue 14, point 1).

`flux bootstrap git … --path=clusters/<cluster>` commits
`clusters/<cluster>/flux-system/{gotk-components,gotk-sync,kustomization}.yaml`
(the GitRepository and Kustomization named `flux-system`, the Kustomization's
path `./clusters/<cluster>`); kustomize-controller builds a folder without a
kustomization.yaml from every manifest under it, so `llmgen.yaml` beside
flux-system/ is applied with it. The files below are what bootstrap writes
(fluxcd/flux2 pkg/manifestgen/sync), reduced to the fields that matter here.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml
from typer.testing import CliRunner

from llmgen.cli.app import app
from llmgen.gitops.commit import commit
from llmgen.lifecycle.scaffold.bootstrap import bootstrap
from llmgen.render import pipeline
from llmgen.verify.runner import verify_documents

CLUSTER = "prod-aws-use1"

GOTK_SYNC = """\
---
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata:
  name: flux-system
  namespace: flux-system
spec:
  interval: 1m0s
  ref:
    branch: main
  secretRef:
    name: flux-system
  url: {url}
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: flux-system
  namespace: flux-system
spec:
  interval: 10m0s
  path: ./clusters/{cluster}
  prune: true
  sourceRef:
    kind: GitRepository
    name: flux-system
"""
FLUX_KUSTOMIZATION = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- gotk-components.yaml
- gotk-sync.yaml
"""


def _git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True)
    return out.stdout.strip()


def _lay_down_bootstrap(root: Path, cluster: str, url: str) -> dict[str, bytes]:
    """The files `flux bootstrap --path=clusters/<cluster>` commits."""
    folder = root / "clusters" / cluster / "flux-system"
    folder.mkdir(parents=True)
    (folder / "gotk-components.yaml").write_text("# Flux components (CRDs, controllers)\n")
    (folder / "gotk-sync.yaml").write_text(GOTK_SYNC.format(url=url, cluster=cluster))
    (folder / "kustomization.yaml").write_text(FLUX_KUSTOMIZATION)
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in folder.iterdir()}


def _repo(scratch_repo: Path) -> Path:
    root = scratch_repo
    _git(root, "init", "-q", "-b", "main")
    _git(root, "config", "user.name", "Test")
    _git(root, "config", "user.email", "test@example.com")
    pipeline.render(root)
    _git(root, "add", ".")
    _git(root, "commit", "-q", "-m", "catalog and first render")
    return root


def test_render_check_and_commit_leave_the_bootstrap_files_alone(scratch_repo: Path) -> None:
    root = _repo(scratch_repo)
    made = bootstrap(root, CLUSTER)
    assert made.written and made.path == f"clusters/{CLUSTER}/llmgen.yaml"
    flux = _lay_down_bootstrap(root, CLUSTER, "ssh://git@github.com/example-org/llm-platform.git")
    _git(root, "add", ".")
    _git(root, "commit", "-q", "-m", "flux bootstrap")

    runner = CliRunner()
    check = runner.invoke(app, ["render", "--check", "--root", str(root)])
    assert check.exit_code == 0, check.output
    # A catalog change, rendered and committed by llmgen.
    env = root / "catalog/environments/dev.yaml"
    old = "- name: bge-m3\n      replicas: {min: 1, max: 1}"
    assert old in env.read_text()
    env.write_text(env.read_text().replace(old, "- name: bge-m3\n      replicas: {min: 1, max: 2}"))
    # llmgen commits generated/ only once its inputs are committed (StaleInputsError).
    _git(root, "commit", "-q", "-am", "bge-m3 in dev: up to 2 replicas")
    pipeline.render(root)
    done = commit(root)
    assert done.committed
    changed = _git(root, "diff", "--name-only", "HEAD~1", "HEAD").splitlines()
    assert changed and all(p.startswith("generated/") for p in changed)
    for rel, data in flux.items():
        assert (root / rel).read_bytes() == data
        assert _git(root, "show", f"HEAD:{rel}").encode() + b"\n" == data
    assert _git(root, "ls-files", f"clusters/{CLUSTER}/llmgen.yaml")
    again = runner.invoke(app, ["render", "--check", "--root", str(root)])
    assert again.exit_code == 0, again.output


def test_the_sync_object_points_flux_at_the_rendered_folder(
    scratch_repo: Path, crd_schemas: Path
) -> None:
    root = _repo(scratch_repo)
    bootstrap(root, CLUSTER)
    text = (root / f"clusters/{CLUSTER}/llmgen.yaml").read_text()
    (doc,) = [d for d in yaml.safe_load_all(text) if d]
    problems = verify_documents([(f"clusters/{CLUSTER}/llmgen.yaml", 1, doc)], crd_schemas)
    assert [str(p) for p in problems if "label" not in p.message] == []
    spec = doc["spec"]
    assert spec["sourceRef"] == {"kind": "GitRepository", "name": "flux-system"}
    target = root / spec["path"].removeprefix("./")
    assert (target / "kustomization.yaml").is_file()
    # Every Flux object under it reads the bootstrap's GitRepository, whose
    # URL scheme matches the secret bootstrap made (SSH key or HTTPS token):
    # llmgen renders no GitRepository of its own to get that wrong.
    for path in target.glob("*.yaml"):
        for d in yaml.safe_load_all(path.read_text()):
            if d and d["kind"] == "GitRepository":
                raise AssertionError(f"{path} renders a GitRepository")
            if d and d["apiVersion"].startswith("kustomize.toolkit.fluxcd.io/"):
                assert d["spec"]["sourceRef"] == spec["sourceRef"], path
                folder = root / d["spec"]["path"].removeprefix("./")
                assert (folder / "kustomization.yaml").is_file()


def test_an_https_token_bootstrap_works_the_same(scratch_repo: Path) -> None:
    root = _repo(scratch_repo)
    bootstrap(root, CLUSTER)
    _lay_down_bootstrap(root, CLUSTER, "https://github.com/example-org/llm-platform.git")
    _git(root, "add", ".")
    _git(root, "commit", "-q", "-m", "flux bootstrap --token-auth")
    assert CliRunner().invoke(app, ["render", "--check", "--root", str(root)]).exit_code == 0
    assert not commit(root).committed  # nothing of llmgen's changed; flux-system untouched


def test_bootstrap_never_overwrites_and_refuses_an_unknown_cluster(scratch_repo: Path) -> None:
    root = _repo(scratch_repo)
    bootstrap(root, CLUSTER)
    assert not bootstrap(root, CLUSTER).written
    path = root / f"clusters/{CLUSTER}/llmgen.yaml"
    path.write_text(path.read_text() + "# a local note\n")
    res = CliRunner().invoke(app, ["bootstrap", CLUSTER, "--root", str(root)])
    assert res.exit_code == 2 and "exists and differs" in res.output
    assert path.read_text().endswith("# a local note\n")
    res = CliRunner().invoke(app, ["bootstrap", "nope", "--root", str(root)])
    assert res.exit_code == 2 and "no cluster 'nope'" in res.output
