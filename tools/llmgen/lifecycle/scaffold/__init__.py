"""`llmgen init`: a new llmgen repository that validates and renders as it is.

The scaffold is a catalog (one cluster per cloud, one environment, one model
that fits a single L4, gpus.yaml, platform.yaml), the schemas and templates
of the installed llmgen, overlays/README.md, a .gitignore, a GitHub Actions
workflow and a pre-commit config. The static files live in `files/` (stored
without leading dots so packaging never drops them); the model file is
written by the same code as `llmgen model new`.

The repository is assembled and validated in a temporary folder beside the
target first, so a failure leaves the target as it was.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from llmgen import __version__
from llmgen.catalog.load import load_catalog
from llmgen.errors import CatalogError, Diagnostic, UsageError
from llmgen.lifecycle.scaffold.model import ModelSpec, model_file
from llmgen.resources import schemas_dir, templates_dir

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


def _assemble(dest: Path) -> None:
    for src in sorted(FILES.rglob("*")):
        if not src.is_file() or "__pycache__" in src.parts:
            continue
        rel = src.relative_to(FILES).as_posix()
        out = dest / _RENAMES.get(rel, rel)
        out.parent.mkdir(parents=True, exist_ok=True)
        text = src.read_text(encoding="utf-8").replace("@LLMGEN_VERSION@", __version__)
        out.write_text(text, encoding="utf-8")
    docs, problems = load_catalog(dest)
    if problems:
        raise CatalogError(problems)
    model = dest / "catalog" / "models" / f"{STARTER_MODEL.name}.yaml"
    model.parent.mkdir(parents=True, exist_ok=True)
    model.write_text(model_file(STARTER_MODEL, docs), encoding="utf-8")
    shutil.copytree(schemas_dir(None), dest / "schemas", ignore=_ignored)
    shutil.copytree(templates_dir(None), dest / "templates", ignore=_ignored)


def _ignored(_folder: str, names: list[str]) -> list[str]:
    return [n for n in names if n == "__pycache__" or n.endswith(".pyc")]


def init(target: Path, *, force: bool = False) -> InitOutcome:
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
        _assemble(tmp)
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
