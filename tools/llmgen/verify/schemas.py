"""Strict JSON Schemas of Kubernetes kinds, compiled once per (apiVersion, kind).

Core kinds come from the PyPI package `kubernetes-validate`, which ships one
folder per Kubernetes version (`v1.33.0-local-strict/deployment-apps-v1.json`)
whose files `$ref` a shared 1.4 MB `_definitions.json`. Compiling that whole
file for every kind would be slow, so each kind is bundled into one
self-contained schema holding only the definitions it reaches. Custom
resources come from a kubeconform-layout folder
(`<group>/<kind>_<version>.json`); their `metadata` is typed as a plain object
there, so it is replaced by the strict core `ObjectMeta`, which catches a
misspelt `lables:` on a ScaledObject as it does on a Deployment.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import jsonschema_rs

from llmgen.catalog.load import PathKey
from llmgen.errors import ToolMissingError

_VERSION_DIR = re.compile(r"v(\d+)\.(\d+)\.(\d+)-(?:local|standalone)-strict")
_GROUP = re.compile(r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)?")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_DEFS_REF = "_definitions.json#/$defs/"
_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
# Definitions whose `oneOf` failure message ("is not valid under any of the
# schemas listed in the 'oneOf' keyword") says nothing useful to a reader.
_FRIENDLY_ONEOF = {
    "io.k8s.apimachinery.pkg.api.resource.Quantity": (
        "a quantity (a string such as 500m or 64Gi, or a number)"
    ),
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": "an integer or a string",
}
MAX_ERRORS_PER_DOCUMENT = 20


class SchemaProblem(Exception):
    """A schema file exists but cannot be used (bad JSON, invalid schema)."""


@dataclass(frozen=True, slots=True)
class SchemaError:
    """One schema violation: where in the document, and what is wrong."""

    path: PathKey
    message: str
    # Where to point the reader when that differs from `path`: an unknown
    # field is reported on its object but located at the key itself.
    key: PathKey | None = None


def split_api_version(api_version: str) -> tuple[str, str]:
    """`apps/v1` -> (`apps`, `v1`); `v1` -> (``, `v1`)."""
    group, _, version = api_version.rpartition("/")
    return group, version


def _parse_version(version: str) -> tuple[int, int]:
    match = re.fullmatch(r"v?(\d+)\.(\d+)(?:\.\d+)?", version.strip())
    if not match:
        raise ValueError(f"not a Kubernetes version: {version!r} (expected e.g. 1.33)")
    return int(match.group(1)), int(match.group(2))


def core_schema_dir(kubernetes_version: str) -> Path:
    """The strict schema folder of kubernetes-validate for `kubernetes_version`.

    The newest shipped version not newer than the one asked for; if every shipped
    version is newer, the oldest (closest) one.
    """
    spec = importlib.util.find_spec("kubernetes_validate")
    if spec is None or not spec.submodule_search_locations:
        raise ToolMissingError("kubernetes-validate", "pip install kubernetes-validate")
    base = Path(next(iter(spec.submodule_search_locations))) / "kubernetes-json-schema"
    shipped: dict[tuple[int, int], Path] = {}
    if base.is_dir():
        for entry in base.iterdir():
            match = _VERSION_DIR.fullmatch(entry.name)
            if match and entry.is_dir():
                shipped[(int(match.group(1)), int(match.group(2)))] = entry
    if not shipped:
        raise ToolMissingError(
            "kubernetes-validate schemas", f"no *-strict schema folders under {base}"
        )
    wanted = _parse_version(kubernetes_version)
    older = [v for v in shipped if v <= wanted]
    return shipped[max(older) if older else min(shipped)]


#: Where custom resources' schemas are: one folder, several (earlier ones win), or none.
CrdSchemas: TypeAlias = Path | Sequence[Path] | None


def crd_folders(crd_schemas: CrdSchemas) -> tuple[Path, ...]:
    """`crd_schemas` as a tuple of folders, in precedence order."""
    if crd_schemas is None:
        return ()
    if isinstance(crd_schemas, str | os.PathLike):  # one folder, never its characters
        return (Path(crd_schemas),)
    return tuple(Path(p) for p in crd_schemas)


def crd_folders_from_env(value: str) -> list[Path]:
    """The folders of `LLMGEN_CRD_SCHEMAS`: separated by os.pathsep (`:`, `;` on
    Windows) like PATH, in precedence order; empty entries are ignored."""
    return [Path(part) for part in value.split(os.pathsep) if part.strip()]


def crd_schema_file(folders: Sequence[Path], api_version: str, kind: str) -> Path | None:
    """The schema of a custom kind in kubeconform's layout
    (`<group>/<kind>_<version>.json`), from the first of `folders` that has it.

    The first folder wins, as on PATH: a repository's own folder listed before
    a shared catalog overrides the catalog's schema of the same kind and
    version (a newer chart's CRD, a corrected file) and adds what it lacks.
    """
    group, version = split_api_version(api_version)
    if not group:
        return None
    for folder in folders:
        path = folder / group / f"{kind.lower()}_{version}.json"
        if path.is_file():
            return path
    return None


class SchemaStore:
    """Finds, bundles and compiles the schema of each kind, once."""

    def __init__(self, crd_schemas: CrdSchemas, kubernetes_version: str = "1.33") -> None:
        self.crd_schemas = crd_folders(crd_schemas)
        self.core_dir = core_schema_dir(kubernetes_version)
        # "v1.33.0-local-strict" -> "1.33"
        self.version = ".".join(self.core_dir.name[1:].split(".")[:2])
        self._defs: dict[str, Any] | None = None
        self._validators: dict[tuple[str, str], jsonschema_rs.Validator | None] = {}
        self._problems: dict[tuple[str, str], str] = {}

    def validator(self, api_version: str, kind: str) -> jsonschema_rs.Validator | None:
        """The compiled validator of a kind, or None when no schema is known.

        Raises `SchemaProblem` when a schema file exists but is unusable.
        """
        key = (api_version, kind)
        group, version = split_api_version(api_version)
        if not (_GROUP.fullmatch(group) and _WORD.fullmatch(version) and _WORD.fullmatch(kind)):
            return None  # not a Kubernetes name; never let it become a file path
        if key in self._problems:
            raise SchemaProblem(self._problems[key])
        if key not in self._validators:
            try:
                schema = self._core(api_version, kind) or self._custom(api_version, kind)
                compiled = jsonschema_rs.Draft202012Validator(schema) if schema else None
            except (OSError, ValueError, SchemaProblem) as exc:
                self._problems[key] = str(exc)
                raise SchemaProblem(str(exc)) from exc
            self._validators[key] = compiled
        return self._validators[key]

    def missing_message(self, api_version: str, kind: str) -> str:
        group, _ = split_api_version(api_version)
        if not group or group.endswith(".k8s.io") or "." not in group:
            return (
                f"no schema for {api_version} {kind} in Kubernetes {self.version}; "
                "if it is a custom resource, add it to --crd-schemas"
            )
        return f"no schema for {api_version} {kind}; add it to --crd-schemas"

    # -- core kinds -------------------------------------------------------

    def _core(self, api_version: str, kind: str) -> dict[str, Any] | None:
        group, version = split_api_version(api_version)
        # kubernetes-validate names files by the group's first label only
        # (`networking.k8s.io/v1` -> `-networking-v1`), so a custom group such
        # as `networking.istio.io` maps onto the same file name; the
        # group-version-kind recorded inside the schema settles it.
        label = group.split(".", 1)[0]
        stem = f"{kind.lower()}-{label}-{version}" if group else f"{kind.lower()}-{version}"
        path = self.core_dir / f"{stem}.json"
        if not path.is_file():
            return None
        schema = _read_json(path)
        gvks = schema.get("x-kubernetes-group-version-kind") or []
        if not any(
            g.get("group", "") == group and g.get("version") == version and g.get("kind") == kind
            for g in gvks
        ):
            return None
        return self._bundle(schema)

    def _definitions(self) -> dict[str, Any]:
        if self._defs is None:
            defs = _read_json(self.core_dir / "_definitions.json").get("$defs")
            if not isinstance(defs, dict):
                raise SchemaProblem(f"{self.core_dir}/_definitions.json has no $defs")
            self._defs = defs
        return self._defs

    def _bundle(self, schema: dict[str, Any]) -> dict[str, Any]:
        """`schema` with every core definition it reaches copied in as local `$defs`."""
        defs = self._definitions()
        needed: dict[str, Any] = {}

        def rewrite(node: Any, in_core: bool) -> Any:
            # Core definitions refer to each other as `#/$defs/X`; a top-level
            # schema refers to them through `/api/_definitions.json#/$defs/X`.
            # Any other `$ref` belongs to the schema itself and is kept.
            if isinstance(node, list):
                return [rewrite(v, in_core) for v in node]
            if not isinstance(node, dict):
                return node
            out: dict[str, Any] = {}
            for k, v in node.items():
                if k == "$id":
                    continue
                if (
                    k == "$ref"
                    and isinstance(v, str)
                    and (_DEFS_REF in v or (in_core and v.startswith("#/$defs/")))
                ):
                    name = v.rsplit("#/$defs/", 1)[1]
                    if name not in needed:
                        if name not in defs:
                            raise SchemaProblem(f"schema refers to unknown definition {name}")
                        needed[name] = None  # reserve first: definitions are recursive
                        needed[name] = rewrite(defs[name], True)
                    out[k] = f"#/$defs/{name}"
                else:
                    out[k] = rewrite(v, in_core)
            return out

        bundled: dict[str, Any] = rewrite(schema, False)
        own = bundled.get("$defs")
        bundled["$defs"] = {**own, **needed} if isinstance(own, dict) else needed
        return bundled

    # -- custom resources -------------------------------------------------

    def _custom(self, api_version: str, kind: str) -> dict[str, Any] | None:
        path = crd_schema_file(self.crd_schemas, api_version, kind)
        if path is None:
            return None
        schema = _read_json(path)
        props = schema.get("properties")
        if isinstance(props, dict):
            props = dict(props)
            props["metadata"] = {"$ref": f"/api/{_DEFS_REF}{_OBJECT_META}"}
            schema = {**schema, "properties": props}
        return self._bundle(schema)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SchemaProblem(f"cannot read schema {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise SchemaProblem(f"schema {path} is not a JSON object")
    return data


def schema_errors(validator: jsonschema_rs.Validator, data: Any) -> list[SchemaError]:
    """Every violation of `data`, with messages fit for a person (empty if valid)."""
    if validator.is_valid(data):  # the fast path: no error objects built
        return []
    out: list[SchemaError] = []
    for error in validator.iter_errors(data):
        out.append(_explain(error))
        if len(out) >= MAX_ERRORS_PER_DOCUMENT:
            break
    return out


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _explain(error: jsonschema_rs.ValidationError) -> SchemaError:
    path: PathKey = tuple(error.instance_path)
    kind = error.kind.name
    detail: dict[str, Any] = error.kind.as_dict()
    if kind == "additionalProperties":
        unexpected = [str(u) for u in detail.get("unexpected", [])]
        names = ", ".join(json.dumps(u) for u in unexpected)
        word = "field" if len(unexpected) == 1 else "fields"
        key = (*path, unexpected[0]) if unexpected else None
        return SchemaError(path, f"unknown {word} {names}", key)
    if kind == "type":
        # kubernetes-validate makes every type nullable; "null" is noise here.
        types = [t for t in detail.get("types", []) if t != "null"] or ["null"]
        return SchemaError(path, f"{_short(error.instance)} is not of type {' or '.join(types)}")
    if kind in ("oneOf", "OneOfNotValid"):
        defs = [p for p in error.schema_path if isinstance(p, str) and p in _FRIENDLY_ONEOF]
        if defs:
            return SchemaError(path, f"{_short(error.instance)} is not {_FRIENDLY_ONEOF[defs[-1]]}")
    return SchemaError(path, error.message)


DEFAULT_KUBERNETES_VERSION = "1.33"
