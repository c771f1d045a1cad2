"""`llmgen secrets check`: every secret an environment references exists in its backend.

For each model placed in the environment, each `spec.secrets[]` entry is
resolved exactly as the rendered ExternalSecret resolves it
(`secret_backends.remote_ref`); so is every remote key and property of the
mesh's ExternalSecrets on each cluster (`cacerts`, and in a multi-cluster
environment one `istio-remote-secret-<peer>` per other cluster), read off the
mesh concern's own rendering. Each is then read from its backend with that
SDK's standard credentials (`secret_backends` readers: Vault through hvac,
AWS Secrets Manager through boto3, GCP Secret Manager through
google-cloud-secret-manager). A missing secret, a missing key, or a refused
read is a located error naming the catalog entry (a model's
`spec.secrets[i]`; for a mesh secret, the environment's `spec.clusters[i]` of
the cluster that reads it); an unreachable backend is one located error at
the environment's `spec.secretStores.<backend>`.

Values are read only to learn which keys they hold; a reader returns key
names and never a value, so nothing here can print or log one.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmgen.catalog import secret_backends as sb
from llmgen.errors import Diagnostic, UsageError
from llmgen.secrets.readers import BackendError, Lookup, SecretReader, default_readers

if TYPE_CHECKING:
    from llmgen.catalog.model import Catalog, Environment, Where
    from llmgen.plan.build import Plan

ReaderFactory = Callable[[Mapping[str, Any]], SecretReader]


@dataclass(frozen=True)
class Requirement:
    """One secret reference that must resolve in one backend, and the catalog entry to blame."""

    name: str  # the secret as messages name it
    key: str  # the key messages name: the catalog's `key`, or the mesh property
    where: Where
    ref: sb.RemoteRef
    model: str | None = None  # whose `spec.secrets[]` entry; None for a mesh secret

    @property
    def label(self) -> str:
        return "secret" if self.model is not None else "mesh secret"


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
                ref = sb.remote_ref(s, env, backend)
                found[key] = Requirement(s.name, s.key, s.where, ref, p.model.name)
    return sorted(found.values(), key=lambda r: (r.ref.backend, r.where.doc.file, r.where.path))


def mesh_requirements(plan: Plan, env: Environment) -> list[Requirement]:
    """Every remote key and property the mesh's ExternalSecrets read, per cluster of `env`.

    Read off the ExternalSecrets the mesh concern renders (`multicluster_outputs`),
    so the check covers exactly what ESO is told to fetch: `cacerts` on every
    cluster, a remote secret per peer only in a multi-cluster environment.
    Each is blamed on `spec.clusters[i]` of the cluster whose ExternalSecret reads it.
    """
    from llmgen.render.concerns import istio, mesh

    found: list[Requirement] = []
    for i, cluster in enumerate(env.clusters):
        cp = plan.clusters.get(cluster)
        # Secrets do not depend on routing, so the cluster's own placements do.
        mv = istio.view(cp) if cp is not None else None
        if mv is None:
            continue
        for out in mesh.multicluster_outputs(mv):
            ctx = out.context
            backend = str(ctx.get("backend") or sb.store_backend(str(ctx["store"])))
            remotes = (
                [d["remoteRef"] for d in ctx["data"]] if "data" in ctx else [ctx["remote_ref"]]
            )
            for remote in remotes:
                key, prop = str(remote["key"]), remote.get("property")
                ref = sb.RemoteRef(backend, key, prop, sb.place(env, backend, key))
                # The remote key's last segment is the secret's own name (vault
                # keys carry the store's path prefix before it).
                name = key.rsplit("/", 1)[-1]
                shown = prop if prop is not None else sb.GCP_WHOLE_VALUE_KEY
                found.append(Requirement(name, shown, env.where.at("clusters", i), ref))
    return found


def _missing_key_message(req: Requirement, lookup: Lookup, taken: set[str]) -> str | None:
    what, ref = f"{req.label} {req.name!r}", req.ref
    if ref.property is None:
        return None if lookup.has_value else f"{what} is empty in {ref.where}"
    if not lookup.is_object:
        # Only a catalog entry can switch to the whole value; the mesh's keys are fixed.
        hint = (
            f" (use key {sb.GCP_WHOLE_VALUE_KEY!r} for the whole value)"
            if ref.backend == "gcp" and req.model is not None
            else ""
        )
        return f"{what} in {ref.where} is not a JSON object, so it has no key {req.key!r}{hint}"
    if ref.property in lookup.keys:
        return None
    # A key another reference reads is no typo of this one: cacerts missing
    # `ca-key.pem` must not suggest the `ca-cert.pem` it also needs.
    close = difflib.get_close_matches(ref.property, sorted(lookup.keys - taken), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{what} has no key {req.key!r} in {ref.where}{hint}"


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
        taken: dict[str, set[str]] = {}
        for r in todo:
            if r.ref.property is not None:
                taken.setdefault(r.ref.key, set()).add(r.ref.property)
        try:
            for r in todo:
                lookup = cache.get(r.ref.key)
                if lookup is None:
                    lookup = cache[r.ref.key] = reader.lookup(r.ref)
                message = _message(r, lookup, taken.get(r.ref.key, set()))
                # A missing or refused secret read for several of its keys
                # (cacerts' four) is one finding, not one per key.
                if message and (found := r.where.error(message)) not in report.diagnostics:
                    report.diagnostics.append(found)
        except BackendError as exc:
            # The backend itself failed (down, or our credentials are refused):
            # one error at the store, not one per secret.
            summary.reachable = False
            report.diagnostics.append(store_where.error(str(exc)))
    report.diagnostics.sort()
    return report


def _message(req: Requirement, lookup: Lookup, taken: set[str]) -> str | None:
    what, ref = f"{req.label} {req.name!r}", req.ref
    if lookup.status == "missing":
        return f"{what} not found in {ref.where}"
    if lookup.status == "denied":
        return f"permission denied reading {what} in {ref.where}"
    return _missing_key_message(req, lookup, taken)


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
    from llmgen.plan.build import build_plan
    from llmgen.render.pipeline import checked_catalog

    catalog, _warnings = checked_catalog(root)
    env = environment_of(catalog, env_name)
    plan = build_plan(catalog)
    reqs = requirements(plan, env) + mesh_requirements(plan, env)
    return check_requirements(env, reqs, readers)
