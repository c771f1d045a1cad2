"""`llmgen weights check --env E`: the mirrors hold exactly what the catalog pins.

For every model the environment places with a pinned manifest (`weights.sha256`,
or a canary's `weightsSha256`), and every cloud it runs on, the mirror at the
model's `weights.uris.<cloud>` must hold:

- `llmgen-manifest.sha256` whose SHA-256 is the pinned one;
- every file the manifest lists, carrying the `sha256` metadata the sync Job
  writes, equal to the manifest's line (files are not downloaded: the pods
  hash every byte before vLLM starts; this check is about what is there);
- each of those objects encrypted with the cloud's key named in the catalog
  (`weightsMirror.<cloud>.kmsKey`): S3 reports `SSEKMSKeyId`, GCS `kmsKeyName`
  (with a `/cryptoKeyVersions/N` suffix, which is dropped before comparing).

Problems are located errors at the catalog entry that pins the revision. The
report names objects and hashes only; no file content is ever printed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from llmgen.catalog.model import Catalog, Environment
from llmgen.errors import Diagnostic, UsageError
from llmgen.plan.build import build_plan
from llmgen.plan.mirror import MirrorItem, items_of
from llmgen.render.concerns.weights import MANIFEST
from llmgen.render.pipeline import checked_catalog
from llmgen.weights.stores import MAX_MANIFEST_BYTES, GcsStore, ObjectStore, S3Store, StoreError

#: one `sha256sum` output line (text mode: two spaces)
_LINE = re.compile(r"(?P<digest>[0-9a-f]{64})  (?P<path>[^\n]+)\Z")


@dataclass(frozen=True)
class ItemResult:
    """What one mirror prefix holds, in names and hashes."""

    cloud: str
    model: str
    revision: str
    uri: str
    pinned: str
    manifest: str = ""  # SHA-256 of the manifest found; "" when there is none
    files: int = 0
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class WeightsReport:
    environment: str
    items: list[ItemResult] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(i.ok for i in self.items) and not self.diagnostics

    def summary(self) -> str:
        lines = []
        for i in self.items:
            state = "ok" if i.ok else f"{len(i.problems)} problem(s)"
            manifest = i.manifest[:12] or "-"
            lines.append(
                f"{i.cloud} {i.model}@{i.revision[:12]} {i.uri}: {state} "
                f"(manifest {manifest}, {i.files} files)"
            )
        lines += [f"not checked: {s}" for s in self.skipped]
        bad = sum(1 for i in self.items if not i.ok)
        lines.append(
            f"weights check {self.environment}: {len(self.items)} mirror(s), "
            + ("all hold their pinned weights" if self.ok else f"{bad} with problems")
        )
        return "\n".join(lines)


def parse_manifest(text: str) -> dict[str, str]:
    """`sha256sum` output -> {path: hex}; lines that are not `<64 hex>  <path>` are refused."""
    out: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        digest, sep, path = line.partition("  ")
        if (
            not sep
            or len(digest) != 64
            or not path
            or path.startswith("/")
            or ".." in path.split("/")
        ):
            raise ValueError(f"manifest line {n} is not '<sha256>  <relative path>'")
        if any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"manifest line {n} is not '<sha256>  <relative path>'")
        out[path] = digest
    return out


def key_matches(found: str, named: str) -> bool:
    """A store's key reference names the catalog's key (GCS adds the key version)."""
    if not named:
        return True
    base = found.split("/cryptoKeyVersions/", 1)[0]
    return base == named


def check_item(item: MirrorItem, store: ObjectStore, kms_key: str) -> ItemResult:
    """Read one mirror prefix and compare it with the catalog."""
    problems: list[str] = []
    base = ItemResult(item.cloud, item.model.name, item.revision, item.uri, item.sha256)
    manifest_key = item.prefix + MANIFEST
    head = store.head(item.bucket, manifest_key)
    if head is None:
        return replace(base, problems=(f"{item.uri}{MANIFEST} does not exist",))
    data = store.read(item.bucket, manifest_key, MAX_MANIFEST_BYTES)
    digest = hashlib.sha256(data).hexdigest()
    if item.sha256 and digest != item.sha256:
        problems.append(f"{MANIFEST} has sha256 {digest}, the catalog pins {item.sha256}")
    if not key_matches(head.kms_key, kms_key):
        problems.append(_key_problem(MANIFEST, head.kms_key, kms_key))
    try:
        listed = parse_manifest(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        problems.append(f"{MANIFEST}: {exc}")
        listed = {}
    for path, want in sorted(listed.items()):
        info = store.head(item.bucket, item.prefix + path)
        if info is None:
            problems.append(f"{path} is listed in the manifest but missing")
            continue
        if info.sha256 != want:
            got = info.sha256 or "no sha256 metadata"
            problems.append(f"{path}: {got}, the manifest lists {want}")
        if not key_matches(info.kms_key, kms_key):
            problems.append(_key_problem(path, info.kms_key, kms_key))
    return replace(base, manifest=digest, files=len(listed), problems=tuple(problems))


def _key_problem(name: str, found: str, named: str) -> str:
    return f"{name} is encrypted with {found or 'no KMS key'}, not {named}"


def default_store(cloud: str) -> ObjectStore:
    if cloud == "aws":
        return S3Store()
    if cloud == "gcp":
        return GcsStore()
    raise UsageError(f"llmgen cannot read {cloud} object stores")


def environment_of(catalog: Catalog, name: str) -> Environment:
    env = catalog.environments.get(name)
    if env is None:
        known = ", ".join(sorted(catalog.environments)) or "none"
        raise UsageError(f"no environment named {name!r} (known: {known})")
    return env


def check_weights(
    root: Path, env_name: str, stores: Mapping[str, ObjectStore] | None = None
) -> WeightsReport:
    """Check every pinned mirror the environment reads; stores default to the SDKs'."""
    catalog, _warnings = checked_catalog(root)
    env = environment_of(catalog, env_name)
    plan = build_plan(catalog)
    report = WeightsReport(env.name)
    mirrors = catalog.platform.weights_mirrors if catalog.platform else {}
    opened: dict[str, ObjectStore] = dict(stores or {})
    for item in items_of(plan.environments[env.name].placements):
        if not item.sha256:
            report.skipped.append(f"{item.cloud} {item.model.name}@{item.revision}: not pinned")
            continue
        mirror = mirrors.get(item.cloud)
        unkeyed = f"{item.cloud}: no platform spec.weightsMirror.{item.cloud}, encryption unchecked"
        if mirror is None and unkeyed not in report.skipped:
            report.skipped.append(unkeyed)
        try:
            if item.cloud not in opened:
                opened[item.cloud] = default_store(item.cloud)
            store = opened[item.cloud]
            result = check_item(item, store, mirror.kms_key if mirror else "")
        except StoreError as exc:
            result = ItemResult(
                item.cloud, item.model.name, item.revision, item.uri, item.sha256,
                problems=(f"cannot read the mirror: {exc}",),
            )  # fmt: skip
        report.items.append(result)
        # Blame the pin: the model's weights.sha256, or the canary's weightsSha256.
        key = "weightsSha256" if item.canary else "sha256"
        for problem in result.problems:
            report.diagnostics.append(
                item.where.error(f"{item.cloud} mirror {item.uri}: {problem}", key)
            )
    return report
