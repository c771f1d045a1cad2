"""Validate the catalog: load, envelope, JSON Schema per kind, then cross-document rules.

Every problem becomes a located `Diagnostic`; nothing stops at the first
one and nothing prints. Only documents that pass their schema are typed into
the `Catalog` the rules (and later stages) work on, so a rule never has to
guard against a wrong type.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema_rs

from llmgen import API_VERSION
from llmgen.catalog import guard
from llmgen.catalog.hints import suggest
from llmgen.catalog.load import Document, load_catalog
from llmgen.catalog.model import Catalog
from llmgen.catalog.rulekit import Present
from llmgen.catalog.rules import run_rules
from llmgen.errors import CatalogError, Diagnostic, Severity, SourceLocation
from llmgen.resources import schemas_dir

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError

# jsonschema (and schema_messages, which uses it) load only when a document
# fails the Rust validator: importing them cost ~0.25 s of every clean run.

KIND_SCHEMAS = {
    "Cluster": "cluster.schema.json",
    "Environment": "environment.schema.json",
    "Model": "model.schema.json",
    "GpuCatalog": "gpucatalog.schema.json",
    "Platform": "platform.schema.json",
}
# Which folder of catalog/ holds which kind; used only to keep a file that
# failed to load from turning every reference to it into a second error.
_FOLDER_KINDS = {"clusters": "Cluster", "environments": "Environment", "models": "Model"}


@dataclass
class ValidationResult:
    """What `llmgen validate` found; `catalog` is None when nothing could be typed."""

    documents: list[Document]
    catalog: Catalog | None
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings allowed)."""
        return not any(d.is_error for d in self.diagnostics)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity is Severity.WARNING]


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    # JSON Schema patterns are ECMA-262 regexes, where `$` ends the string;
    # Python's `$` also matches before a final newline and would let
    # "main\n" through. `\Z` is the ECMA meaning.
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + "\\Z"
    return re.compile(pattern)


def _pattern(
    validator: Any, pattern: str, instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    from jsonschema.exceptions import ValidationError

    if validator.is_type(instance, "string") and not _regex(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


@lru_cache(maxsize=1)
def _validator_class() -> Any:
    from jsonschema import Draft202012Validator, validators

    return validators.extend(Draft202012Validator, {"pattern": _pattern})


@dataclass(frozen=True)
class _Compiled:
    schema: dict[str, Any]
    fast: Any  # jsonschema_rs validator: a yes/no answer in microseconds

    @property
    def full(self) -> Any:
        """The jsonschema validator: every error, with paths, for the report."""
        return _full(json.dumps(self.schema))


@lru_cache(maxsize=32)
def _full(schema_json: str) -> Any:
    return _validator_class()(json.loads(schema_json))


@lru_cache(maxsize=32)
def _compiled(path: str) -> _Compiled:
    # One compiled pair per schema file per process: compiling costs far more
    # than validating a catalog document.
    raw = Path(path).read_bytes()
    schema = json.loads(raw)
    packaged = schemas_dir(None) / Path(path).name
    if not packaged.is_file() or packaged.read_bytes() != raw:
        # A repository's own, changed schema is checked against the meta-schema;
        # llmgen's packaged schemas (and identical copies) are checked by the test
        # suite, not on every run: it cost ~0.45 s of a 200-model validate.
        _validator_class().check_schema(schema)
    return _Compiled(schema, jsonschema_rs.validator_for(schema))


def schema_validator(kind: str, schemas: Path) -> Any:
    """The compiled jsonschema validator for a catalog kind (KeyError for an unknown kind)."""
    return _compiled(str((schemas / KIND_SCHEMAS[kind]).resolve())).full


def check_envelope(doc: Document) -> list[Diagnostic]:
    """apiVersion and kind, checked first: they decide which schema applies."""
    found: list[Diagnostic] = []
    api = doc.data.get("apiVersion")
    if api is None:
        found.append(doc.diagnostic((), "missing required key 'apiVersion'"))
    elif api != API_VERSION:
        found.append(
            doc.diagnostic(
                ("apiVersion",), f"unsupported apiVersion {api!r}; expected {API_VERSION!r}"
            )
        )
    kind = doc.data.get("kind")
    if kind is None:
        found.append(doc.diagnostic((), "missing required key 'kind'"))
    elif not isinstance(kind, str) or kind not in KIND_SCHEMAS:
        known = ", ".join(sorted(KIND_SCHEMAS))
        hint = suggest(kind, KIND_SCHEMAS) if isinstance(kind, str) else None
        found.append(
            doc.diagnostic(
                ("kind",),
                f"unknown kind {kind!r}; "
                + (f"did you mean {hint!r}?" if hint else f"expected one of {known}"),
            )
        )
    return found


def check_schema(doc: Document, schemas: Path) -> list[Diagnostic]:
    """Every JSON Schema error of one document, located and phrased for people."""
    compiled = _compiled(str((schemas / KIND_SCHEMAS[doc.kind]).resolve()))
    # Nearly every document is valid: the Rust validator says so ~100x faster
    # than jsonschema, which then only runs to explain a document that failed.
    # (Tests check the two agree; where they might not, jsonschema decides.)
    try:
        if compiled.fast.is_valid(doc.data):
            return []
    except (ValueError, OverflowError):
        pass
    from llmgen.catalog.schema_messages import translate

    found: set[Diagnostic] = set()
    for error in compiled.full.iter_errors(doc.data):
        found.update(translate(doc, error, compiled.schema))
    return sorted(found)


def _duplicates(docs: Iterable[Document]) -> tuple[list[Document], list[Diagnostic]]:
    """Keep the first document of each (kind, name); report the others."""
    first: dict[tuple[str, str], Document] = {}
    kept: list[Document] = []
    found: list[Diagnostic] = []
    for doc in docs:
        key = (doc.kind, doc.name)
        if not doc.name:  # a missing name is the schema's to report
            kept.append(doc)
            continue
        if key in first:
            where = first[key].locate(("metadata", "name"))
            found.append(
                doc.diagnostic(
                    ("metadata", "name"),
                    f"duplicate {doc.kind} name {doc.name!r}; already defined at {where}",
                )
            )
            continue
        first[key] = doc
        kept.append(doc)
    return kept, found


def _singletons(docs: list[Document]) -> list[Diagnostic]:
    platforms = [d for d in docs if d.kind == "Platform"]
    found = [
        d.diagnostic(
            ("kind",),
            f"a catalog has one Platform; another is defined in {platforms[0].file}",
        )
        for d in platforms[1:]
    ]
    return found


def _present(docs: list[Document], failed_files: Iterable[str]) -> Present:
    """Names that exist in the catalog, even in documents that failed their schema.

    A reference to such a name is not reported again: the document's own
    errors already explain why it is not in the typed catalog.
    """
    present: dict[str, set[str]] = {kind: set() for kind in KIND_SCHEMAS}
    present["GPU"] = set()
    for doc in docs:
        if doc.kind in present and doc.name:
            present[doc.kind].add(doc.name)
        if doc.kind == "GpuCatalog":
            gpus = doc.data.get("spec", {})
            gpus = gpus.get("gpus") if isinstance(gpus, dict) else None
            if isinstance(gpus, dict):
                present["GPU"].update(str(k) for k in gpus)
    for file in failed_files:
        parts = Path(file).parts
        if len(parts) >= 3 and parts[0] == "catalog" and parts[1] in _FOLDER_KINDS:
            present[_FOLDER_KINDS[parts[1]]].add(Path(file).stem)
    return {kind: frozenset(names) for kind, names in present.items()}


def catalog_leaks(docs: list[Document]) -> list[Diagnostic]:
    """Catalog values that look like credentials (never quoting the value)."""
    found: list[Diagnostic] = []

    def walk(doc: Document, node: object, path: tuple[str | int, ...]) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(doc, value, (*path, key))
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(doc, value, (*path, i))
        elif isinstance(node, str):
            # Environment config (free-form key/value) is judged by key and
            # value in rules_policy.config_credentials; elsewhere only a
            # recognisable credential format counts.
            if doc.kind == "Environment" and path[:2] == ("spec", "config"):
                return
            reason = guard.pattern_reason(node)
            if reason:
                found.append(
                    doc.diagnostic(
                        path,
                        f"{reason}; llmgen never renders secret values: reference the "
                        "secret from its backend (a model's secrets[])",
                    )
                )

    for doc in docs:
        walk(doc, doc.data, ())
    return found


def validate(root: Path) -> ValidationResult:
    """Validate the catalog under `root`; never raises for bad input, never prints."""
    try:
        docs, diagnostics = load_catalog(root)
    except CatalogError as exc:
        return ValidationResult([], None, list(exc.diagnostics))
    schemas = schemas_dir(root)
    failed_files = {d.location.file for d in diagnostics}
    typed_kinds: list[Document] = []
    for doc in docs:
        envelope = check_envelope(doc)
        if envelope:
            diagnostics.extend(envelope)
            continue
        typed_kinds.append(doc)
    unique, dups = _duplicates(typed_kinds)
    diagnostics.extend(dups)
    diagnostics.extend(_singletons(unique))
    valid: list[Document] = []
    for doc in unique:
        problems = check_schema(doc, schemas)
        diagnostics.extend(problems)
        if not problems:
            valid.append(doc)
    catalog = Catalog.build(valid)
    if not any(d.kind == "Platform" for d in docs) and not failed_files:
        diagnostics.append(
            Diagnostic(
                SourceLocation("catalog"), "", "no Platform document; add catalog/platform.yaml"
            )
        )
    diagnostics.extend(run_rules(catalog, _present(docs, failed_files)))
    diagnostics.extend(catalog_leaks(docs))
    return ValidationResult(docs, catalog, sorted(set(diagnostics)))
