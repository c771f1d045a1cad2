"""simulate: replay traffic against the autoscaling llmgen renders, before merging.

It owns `llmgen simulate` and `diff --base --simulate`: building one unit per
rendered ScaledObject (`setup`, `objects`), the trigger queries and KEDA
formulas as simulated signals (`promsignals`, `exprlang`), the HPA and KEDA's
activation and fallback (`hpa`), a per-replica serving model (`serving`), the
minute loop with routing, failover, pods and nodes (`engine`), the load
(`traffic`) and the outputs (`report`, `chart`, `compare`). It reads the plan
and the rendered objects, so it may import render, plan, catalog and the
foundation modules; only cli imports it. docs/simulate.md explains the model.
"""
