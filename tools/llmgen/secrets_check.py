"""`llmgen secrets check`: every secret an environment references exists in its backend.

For each model placed in the environment, each `spec.secrets[]` entry is
resolved exactly as the rendered ExternalSecret resolves it
(`secret_backends.remote_ref`), then read from its backend with that SDK's
standard credentials (`secret_backends` readers: Vault through hvac, AWS
Secrets Manager through boto3, GCP Secret Manager through
google-cloud-secret-manager). A missing secret, a missing key, or a refused
read is a located error naming the catalog entry; an unreachable backend is
one located error at the environment's `spec.secretStores.<backend>`.

Values are read only to learn which keys they hold; a reader returns key
names and never a value, so nothing here can print or log one.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import secret_backends as sb
from .errors import Diagnostic, UsageError
from .secret_readers import BackendError, Lookup, SecretReader, default_readers

if TYPE_CHECKING:
    from .catalog import Catalog, Environment, ModelSecret
    from .plan import Plan

ReaderFactory = Callable[[Mapping[str, Any]], SecretReader]


@dataclass(frozen=True)
class Requirement:
    """One catalog secret entry that must resolve in one backend."""

    secret: ModelSecret
    model: str
    ref: sb.RemoteRef


@dataclass
class BackendSummary:
    backend: str
    address: str
    references: int = 0
    reachable: bool = True


@dataclass
class CheckReport:
    """What was checked (never a value) and every problem found."""

    environment: str
    diagnostics: list[Diagnostic] = field(default_factory=list)
    backends: list[BackendSummary] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(d.is_error for d in self.diagnostics)

    def summary(self) -> str:
        """One line: what was checked where, and the verdict."""
        parts = [f"{b.backend} ({b.address}): {b.references}" for b in self.backends]
        checked = "; ".join(parts) if parts else "no secrets referenced"
        errors = sum(1 for d in self.diagnostics if d.is_error)
        verdict = "OK" if self.ok else f"FAILED with {errors} error(s)"
        return f"{verdict}: environment {self.environment!r}; references checked: {checked}"


def requirements(plan: Plan, env: Environment) -> list[Requirement]:
    """Every (catalog secret entry, backend) pair the environment's rendered clusters read."""
    found: dict[tuple[str, tuple[str | int, ...], str], Requirement] = {}
    env_plan = plan.environments[env.name]
    for p in env_plan.placements:
        for s in p.model.secrets:
            backend = sb.backend_for(s, env, p.cluster.cloud)
            if backend is None or backend not in env.secret_stores:
                continue  # validate reports these; render refuses them
            key = (s.where.doc.file, s.where.path, backend)
            if key not in found:
                found[key] = Requirement(s, p.model.name, sb.remote_ref(s, env, backend))
    return sorted(
        found.values(),
        key=lambda r: (r.ref.backend, r.secret.where.doc.file, r.secret.where.path),
    )


def _missing_key_message(req: Requirement, lookup: Lookup) -> str | None:
    s, ref = req.secret, req.ref
    if ref.property is None:
        return None if lookup.has_value else f"secret {s.name!r} is empty in {ref.where}"
    if not lookup.is_object:
        hint = (
            f" (use key {sb.GCP_WHOLE_VALUE_KEY!r} for the whole value)"
            if ref.backend == "gcp"
            else ""
        )
        return (
            f"secret {s.name!r} in {ref.where} is not a JSON object, "
            f"so it has no key {s.key!r}{hint}"
        )
    if ref.property in lookup.keys:
        return None
    close = difflib.get_close_matches(ref.property, sorted(lookup.keys), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"secret {s.name!r} has no key {s.key!r} in {ref.where}{hint}"


def check_requirements(
    env: Environment,
    reqs: list[Requirement],
    readers: Mapping[str, ReaderFactory] | None = None,
) -> CheckReport:
    """Read every requirement from its backend; one reader per backend, one read per key."""
    factories = dict(default_readers() if readers is None else readers)
    report = CheckReport(env.name)
    by_backend: dict[str, list[Requirement]] = {}
    for r in reqs:
        by_backend.setdefault(r.ref.backend, []).append(r)
    for backend in sb.BACKENDS:
        todo = by_backend.get(backend)
        if not todo:
            continue
        store_where = env.where.at("secretStores", backend)
        try:
            reader = factories[backend](env.secret_stores[backend])
        except BackendError as exc:
            report.backends.append(
                BackendSummary(backend, "not reached", len(todo), reachable=False)
            )
            report.diagnostics.append(store_where.error(str(exc)))
            continue
        summary = BackendSummary(backend, reader.address, len(todo))
        report.backends.append(summary)
        cache: dict[str, Lookup] = {}
        try:
            for r in todo:
                lookup = cache.get(r.ref.key)
                if lookup is None:
                    lookup = cache[r.ref.key] = reader.lookup(r.ref)
                message = _message(r, lookup)
                if message:
                    report.diagnostics.append(r.secret.where.error(message))
        except BackendError as exc:
            # The backend itself failed (down, or our credentials are refused):
            # one error at the store, not one per secret.
            summary.reachable = False
            report.diagnostics.append(store_where.error(str(exc)))
    report.diagnostics.sort()
    return report


def _message(req: Requirement, lookup: Lookup) -> str | None:
    s, ref = req.secret, req.ref
    if lookup.status == "missing":
        return f"secret {s.name!r} not found in {ref.where}"
    if lookup.status == "denied":
        return f"permission denied reading secret {s.name!r} in {ref.where}"
    return _missing_key_message(req, lookup)


def environment_of(catalog: Catalog, name: str) -> Environment:
    """The named environment, or a usage error with a suggestion."""
    env = catalog.environments.get(name)
    if env is None:
        close = difflib.get_close_matches(name, sorted(catalog.environments), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UsageError(f"no environment named {name!r}{hint}")
    return env


def check_environment(
    root: Path, env_name: str, readers: Mapping[str, ReaderFactory] | None = None
) -> CheckReport:
    """`llmgen secrets check --env E`: validate the catalog, then check E's secrets.

    Raises CatalogError if the catalog is invalid and UsageError for an unknown
    environment; otherwise returns a report (its `ok` decides the exit code).
    """
    from .pipeline import checked_catalog
    from .plan import build_plan

    catalog, _warnings = checked_catalog(root)
    env = environment_of(catalog, env_name)
    plan = build_plan(catalog)
    return check_requirements(env, requirements(plan, env), readers)
