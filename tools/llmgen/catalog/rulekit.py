"""What every cross-document rule shares: the `Context` a rule sees, the `Rule`
type, and the walks over environment model entries. The rule modules
(`rules`, `rules_capacity`, `rules_policy`) import from here, never from each other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from llmgen.catalog.hints import did_you_mean
from llmgen.catalog.model import Catalog, Cluster, Environment, Model, ModelDeployment
from llmgen.errors import Diagnostic

# kind ("Cluster", "Model", "GPU", ...) -> names that exist in the catalog,
# including documents that failed their schema and so are not typed.
Present = Mapping[str, frozenset[str]]


@dataclass(frozen=True)
class Context:
    """What every rule sees: the typed catalog and the names known to exist."""

    catalog: Catalog
    present: Present = field(default_factory=dict)

    def _typed(self, kind: str) -> Mapping[str, object]:
        cat = self.catalog
        typed: dict[str, Mapping[str, object]] = {
            "Cluster": cat.clusters,
            "Model": cat.models,
            "GPU": cat.gpus,
        }
        return typed.get(kind, {})

    def dangling(self, kind: str, name: str) -> bool:
        """True when `name` names nothing at all (not even a broken document)."""
        return name not in self._typed(kind) and name not in self.present.get(kind, frozenset())

    def unknown(self, what: str, kind: str, name: str) -> str:
        return f"unknown {what} {name!r}" + did_you_mean(name, self._typed(kind))


Rule = Callable[[Context], Iterable[Diagnostic]]


def deployments(cat: Catalog) -> Iterator[tuple[Environment, int, ModelDeployment]]:
    """Every (environment, index, model entry), in catalog order."""
    for env in cat.environments.values():
        for i, dep in enumerate(env.models):
            yield env, i, dep


def targets(cat: Catalog, env: Environment, dep: ModelDeployment) -> list[Cluster]:
    """The typed clusters an environment serves a model on, ignoring bad names."""
    names = dep.clusters if dep.clusters is not None else env.clusters
    return [cat.clusters[c] for c in names if c in env.clusters and c in cat.clusters]


def placed_models(cat: Catalog) -> Iterator[tuple[Environment, int, ModelDeployment, Model]]:
    """Every environment model entry whose model is typed."""
    for env, i, dep in deployments(cat):
        model = cat.models.get(dep.name)
        if model is not None:
            yield env, i, dep, model
