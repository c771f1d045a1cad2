"""What the catalog says of each cluster that the generated tree does not (verify's facts).

Verify checks a tree whatever state the catalog is in: `catalog_facts` reads
versions, cloud, prerequisites and node-pool allocatable from the catalog
when it loads, and gives nothing otherwise.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from llmgen.catalog.names import nodepool_name
from llmgen.verify.cluster import ClusterFacts, PoolFit


def catalog_facts(root: Path) -> dict[str, ClusterFacts]:
    """What the catalog under `root` says of each cluster; empty if it does not load.

    Verify checks a tree whatever state the catalog is in: an invalid catalog
    only loses the per-cluster facts (versions, cloud, prerequisites).
    """
    from llmgen.catalog.validate import validate

    catalog = validate(root).catalog
    if catalog is None:
        return {}
    out: dict[str, ClusterFacts] = {}
    for name, cluster in catalog.clusters.items():
        try:
            major, minor = (int(p) for p in cluster.kubernetes_version.split(".")[:2])
        except ValueError:
            major, minor = 1, 33
        out[name] = ClusterFacts(
            cloud=cluster.cloud,
            kubernetes_version=(major, minor),
            prerequisites=tuple(cluster.prerequisites),
            catalog_file=cluster.where.doc.file,
            pools=_pool_fits(catalog, cluster),
        )
    return out


def _pool_fits(catalog: Any, cluster: Any) -> tuple[PoolFit, ...]:
    """Each pool's shapes and what they give pods, from the catalog's node-fit arithmetic
    (`llmgen.catalog.fit`, issue 13). Without it (or a shape's size), no pool is
    known and the fit check is skipped and counted, not passed."""
    try:
        fit = importlib.import_module("llmgen.catalog.fit")
    except ImportError:
        return ()
    out = []
    for pool in cluster.node_pools:
        gpu = catalog.gpus.get(pool.gpu)
        if gpu is None:
            continue
        try:
            found = list(fit.shapes(pool, gpu, cluster.cloud))
            # A shape of unknown size (0 vCPUs or GiB in the GpuCatalog) might fit
            # anything: the pool's fit is then unknown and the check skipped.
            if any(not shape.vcpus or not shape.memory_gib for shape in found):
                found = []
            sizes = tuple(
                (shape.name, *_cpu_memory(fit.allocatable(cluster.cloud, shape))) for shape in found
            )
        except (AttributeError, TypeError, ValueError):
            continue
        out.append(PoolFit(nodepool_name(pool.name), sizes))
    return tuple(out)


def _cpu_memory(resources: Any) -> tuple[float, float]:
    return float(resources.cpu), float(resources.memory_gib)
