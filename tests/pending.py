"""Verify findings on today's render that other issues fix in the renderer.

`llmgen verify` (issue 16) flags two defects the field reviews found in the
shipped render: PodMonitors scraping port 15020, which no container declares
(review workloads-scaling-nodepools #1; the issue-13 branch fixes the render),
and istiod starting before its plugged-in CA exists (review
flux-mesh-dns-secrets D2; the issue-14 branch reorders the layers). Tests of
rendered output tolerate exactly these findings until those fixes are
merged. INTEGRATOR: once both are merged, empty PENDING and this tolerance
goes away (the tests then require a clean verify).
"""

from __future__ import annotations

from collections.abc import Iterable

from llmgen.errors import Diagnostic

PENDING = (
    # issue 13's PodMonitor fix is merged on this branch: only issue 14's remains.
    "reads Secret istio-system/cacerts only at start-up",
)


def blocking(diagnostics: Iterable[Diagnostic]) -> list[str]:
    """The error findings, less the pending render defects above."""
    return [
        str(d)
        for d in diagnostics
        if d.is_error and not any(p in d.message or p in str(d) for p in PENDING)
    ]
