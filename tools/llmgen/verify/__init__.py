"""verify: check a rendered tree the way clusters would receive it.

It owns splitting manifests with positions (`manifests`), the strict core
and CRD schemas (`schemas`), kustomize builds through kubectl (`kustomize`),
Flux references between objects (`flux_refs`), and the driver that runs every
check and collects located diagnostics (`runner`). It may import `catalog`
(names, the credential guard, positions) and the foundation modules; it
never imports render, so it checks any tree, hand-edited overlays included.
"""

from __future__ import annotations
