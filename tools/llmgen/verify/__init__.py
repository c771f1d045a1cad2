"""verify: check a rendered tree the way clusters would receive it.

It owns splitting manifests with positions (`manifests`), the strict core
and CRD schemas (`schemas`), kustomize builds through kubectl (`kustomize`)
and what Flux applies from them (`built`), Flux references between objects
(`flux_refs`), the per-document checks (`document`: schema, CRD CEL rules in
`cel` with the Kubernetes library in `cel_library`, the API server's own
rules in `apiserver`), the wiring across resources and Flux layers (`cluster`
indexes one cluster; `wiring`, `refs` and `pods` check it, with the add-on
facts of `charts`), the per-family counters (`stats`), and the driver that
runs every check and collects located diagnostics (`runner`). It may import
`catalog` (names, the credential guard, positions, cluster facts) and the
foundation modules; it never imports render, so it checks any tree,
hand-edited overlays included.
"""

from __future__ import annotations
