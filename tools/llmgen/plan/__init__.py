"""plan: what each cluster gets, as data with no YAML text in it.

It owns placement and replica allocation (`build`, `allocate`), routing
decisions (failover, canary, timeouts, DNS: `routing`), and the PromQL the
autoscalers and alerts share (`signals`, `promql`). `build.Plan`,
`ClusterPlan` and `Placement` are produced here and read by render, verify,
gitops and secrets. It may import `catalog`, `clouds` and the foundation
modules, never a later stage.
"""

from __future__ import annotations
