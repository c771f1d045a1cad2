"""The CloudProvider interface: everything that differs between clouds.

A provider answers questions about one cluster on its cloud: which node
labels select a GPU pool, how a ServiceAccount gets cloud credentials, which
weights URI to load from, which secret-store backend is native. Providers
register themselves by name; plan and render only ever call this interface,
so adding a cloud is adding a class (and its templates under
`templates/nodepools/<cloud>/`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from ..catalog import Cluster, Gpu, Model, NodePool

_REGISTRY: dict[str, type[CloudProvider]] = {}


def register(cls: type[CloudProvider]) -> type[CloudProvider]:
    """Class decorator: make a provider available under `cls.name`."""
    _REGISTRY[cls.name] = cls
    return cls


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def get_provider(name: str) -> CloudProvider:
    from . import aws, gcp  # noqa: F401  (register the built-in clouds)

    try:
        return _REGISTRY[name]()
    except KeyError:
        raise KeyError(f"no cloud provider named {name!r}; known: {sorted(_REGISTRY)}") from None


def known_clouds() -> list[str]:
    from . import aws, gcp  # noqa: F401

    return sorted(_REGISTRY)


class CloudProvider(ABC):
    """One cloud's answers; stateless, so one instance serves every cluster."""

    name: ClassVar[str]
    #: the catalog key under GpuCatalog gpus.<GPU>.<cloud> listing shapes
    storage_scheme: ClassVar[str]

    @abstractmethod
    def gpu_node_selector(self, cluster: Cluster, pool: NodePool, gpu: Gpu) -> dict[str, str]:
        """Node labels that pin a pod to `pool` (and so to its GPU)."""

    @abstractmethod
    def gpu_tolerations(self, pool: NodePool) -> list[dict[str, str]]:
        """Tolerations a GPU pod needs to land on `pool`."""

    @abstractmethod
    def workload_identity_annotations(
        self, cluster: Cluster, namespace: str, service_account: str
    ) -> dict[str, str]:
        """ServiceAccount annotations granting cloud credentials (IRSA / Workload Identity)."""

    def weights_uri(self, model: Model) -> str:
        """The cloud-local mirror of the model's weights."""
        return model.weight_uris.get(self.name, "")
