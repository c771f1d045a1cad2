"""`llmgen init`: a new llmgen repository that validates and renders as it is.

The scaffold is a catalog (one cluster per cloud, one environment, one model
that fits a single L4, gpus.yaml, platform.yaml), overlays/README.md, a
.gitignore, a GitHub Actions workflow and a pre-commit config. The schemas
and templates stay in the installed llmgen, so an upgrade reaches the repo;
`eject` (or `init --eject`) copies them in for a team that wants its own.
Editors get the schemas from `.llmgen/schemas/` (git-ignored), which
`llmgen schema --write .llmgen/schemas` refreshes. The static files live in `files/` (stored
without leading dots so packaging never drops them); the model file is
written by the same code as `llmgen model new`.

The repository is assembled and validated in a temporary folder beside the
target first, so a failure leaves the target as it was.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from llmgen.catalog.load import load_catalog
from llmgen.errors import CatalogError, Diagnostic, UsageError
from llmgen.lifecycle.scaffold.model import ModelSpec, model_file
from llmgen.resources import packaged_dir, schemas_dir

FILES = Path(__file__).parent / "files"

#: scaffold file -> path in the new repository
_RENAMES = {
    "gitignore": ".gitignore",
    "pre-commit-config.yaml": ".pre-commit-config.yaml",
    "github/workflows/llmgen.yaml": ".github/workflows/llmgen.yaml",
}

STARTER_MODEL = ModelSpec(
    name="llama-3-1-8b-instruct",
    repo="meta-llama/Llama-3.1-8B-Instruct",
    revision="0e9e39f249a16976918f6564b8830bc894c89659",
    gpu="L4",
    params_b=8,
    max_model_len=16384,
    weights_bucket="example-llm-weights",
    team="platform",
    cost_center="cc-0000",
    description=(
        "A general-purpose 8B chat model on one L4. Mirror its weights to the "
        "buckets below, then add weights.sha256 and pin the image to a digest."
    ),
)


@dataclass
class InitOutcome:
    """The files `init` wrote, relative to the new repository's root."""

    root: Path
    files: list[str] = field(default_factory=list)
    warnings: list[Diagnostic] = field(default_factory=list)


def _is_empty(target: Path) -> bool:
    return not target.exists() or (target.is_dir() and not any(target.iterdir()))


#: What the workflows install when llmgen's own origin is unknown: a pinned
#: VCS reference that fails loudly until someone fills in the real one.
PLACEHOLDER_PACKAGE = (
    "llmgen @ git+https://github.com/example-org/llmgen@0000000000000000000000000000000000000000"
)
_COMMIT = re.compile(r"[0-9a-f]{40}")
_EDITOR_SCHEMAS = ".llmgen/schemas"


def install_spec() -> tuple[str, str]:
    """How CI should install the running llmgen, and a note for the workflow.

    The package index's `llmgen` is an unrelated project, so the answer is
    never a bare name: the git commit or the hashed archive this llmgen was
    installed from (PEP 610 `direct_url.json`), else a placeholder to fill in.
    """
    try:
        raw = metadata.distribution("llmgen").read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        raw = None
    info = json.loads(raw) if raw else {}
    url = info.get("url", "")
    vcs = info.get("vcs_info") or {}
    commit = vcs.get("commit_id", "")
    if vcs.get("vcs") == "git" and _COMMIT.fullmatch(commit) and url.startswith("https://"):
        return f"llmgen @ git+{url}@{commit}", "This is the commit init ran from."
    archive = info.get("archive_info") or {}
    sha = (archive.get("hashes") or {}).get("sha256", "")
    if url.startswith("https://") and re.fullmatch(r"[0-9a-f]{64}", sha):
        return f"llmgen @ {url}#sha256={sha}", "This is the archive init ran from."
    return PLACEHOLDER_PACKAGE, "Replace example-org and the hash with the ones you vetted."


def _assemble(dest: Path, eject: bool) -> None:
    spec, note = install_spec()
    for src in sorted(FILES.rglob("*")):
        if not src.is_file() or "__pycache__" in src.parts:
            continue
        rel = src.relative_to(FILES).as_posix()
        out = dest / _RENAMES.get(rel, rel)
        out.parent.mkdir(parents=True, exist_ok=True)
        text = src.read_text(encoding="utf-8")
        text = text.replace("@LLMGEN_PACKAGE@", spec).replace("@LLMGEN_PACKAGE_NOTE@", note)
        out.write_text(_modeline(text, eject), encoding="utf-8")
    docs, problems = load_catalog(dest)
    if problems:
        raise CatalogError(problems)
    model = dest / "catalog" / "models" / f"{STARTER_MODEL.name}.yaml"
    model.parent.mkdir(parents=True, exist_ok=True)
    model.write_text(_modeline(model_file(STARTER_MODEL, docs), eject), encoding="utf-8")
    if eject:
        eject_into(dest)
    else:
        shutil.copytree(schemas_dir(None), dest / _EDITOR_SCHEMAS, ignore=_ignored)


def _modeline(text: str, eject: bool) -> str:
    # Without an ejected schemas/, editors read the git-ignored copy instead.
    if eject:
        return text
    return re.sub(
        r"^(# yaml-language-server: \$schema=(?:\.\./)+)schemas/",
        rf"\g<1>{_EDITOR_SCHEMAS}/",
        text,
        count=1,
        flags=re.M,
    )


def eject_into(root: Path, *, force: bool = False) -> list[str]:
    """Copy the installed llmgen's schemas/ and templates/ into `root`.

    From then on the repository's copies win (resources.py) and upgrades of
    llmgen no longer reach them; `llmgen validate` says when they differ.
    Refuses existing folders unless `force`. Returns the files written.
    """
    written: list[str] = []
    for name in ("schemas", "templates"):
        target = root / name
        if target.exists() and not force:
            raise UsageError(f"{target} exists; pass --force to replace it")
        source = packaged_dir(name)
        if target.exists() and target.resolve() == source.resolve():
            continue  # llmgen's own source checkout: these are the packaged copies
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(source, target, ignore=_ignored)
        written += sorted(p.relative_to(root).as_posix() for p in target.rglob("*") if p.is_file())
    return written


def _ignored(_folder: str, names: list[str]) -> list[str]:
    return [n for n in names if n == "__pycache__" or n.endswith(".pyc")]


def init(target: Path, *, force: bool = False, eject: bool = False) -> InitOutcome:
    """Scaffold a new llmgen repository in `target` (created if missing).

    Refuses a non-empty `target` unless `force`, in which case the scaffold's
    files replace same-named ones and everything else is left alone. The
    scaffold is validated before anything lands in `target`.
    """
    from llmgen.plan.check import validate_with_plan

    target = target.resolve()
    if target.exists() and not target.is_dir():
        raise UsageError(f"{target} exists and is not a folder")
    if not _is_empty(target) and not force:
        raise UsageError(f"{target} is not empty; pass --force to add the scaffold anyway")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".llmgen-init-", dir=target.parent) as tmpdir:
        tmp = Path(tmpdir)
        _assemble(tmp, eject)
        result, _ = validate_with_plan(tmp)
        if not result.ok:
            raise CatalogError(result.diagnostics)
        written = sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if p.is_file())
        target.mkdir(exist_ok=True)
        # Child by child: copying the temporary folder itself would give the
        # target its private 0700 mode.
        for child in sorted(tmp.iterdir()):
            if child.is_dir():
                shutil.copytree(child, target / child.name, dirs_exist_ok=True)
            else:
                shutil.copy2(child, target / child.name)
    return InitOutcome(target, written, result.warnings)
