"""A trigger's PromQL, evaluated on the simulated cluster instead of on Prometheus.

KEDA's Prometheus scaler sends the rendered `query` to Prometheus and reads
back one sample (kedacore/keda v2.18.1 `pkg/scalers/prometheus_scaler.go`:
an empty result is 0 with `ignoreNullValues` true, the default, and an error
otherwise; more than one element is an error; ±Inf is treated like empty).
The simulation does the same with the query itself, parsed by promql-parser:
each series the query selects is mapped, by metric name, to a simulated
quantity (`METRICS`), and the PromQL operators are applied to a compact
model of an instant vector in which every pod of a Deployment carries the
same value (`Vec`: value per series, series count, present). That is exact
for the sums, counts, averages and maxima scaling queries use, because the
simulation spreads load evenly over ready pods.

Nothing is hard-coded about today's formula or triggers: a new trigger that
reads a known metric just works, and a metric the simulation does not model
is an error naming it (never a silent 0). Label matchers select the model's
own pods, so their values are ignored, except `reporter` and
`response_code` on Istio's request counter, which choose what is counted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import promql_parser as pp

Array = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]
Signals = Mapping[str, npt.NDArray[Any]]


class QueryError(ValueError):
    """A query the simulation cannot evaluate."""


class Vec(NamedTuple):
    """An instant vector of `n` identical series (value `val`), or a scalar."""

    val: Array
    n: Array
    present: Mask
    scalar: bool = False
    #: series per pod (GPUs per pod for DCGM), for `by (pod)` grouping
    per_pod: Array | None = None


@dataclass(frozen=True)
class Metric:
    """How one Prometheus metric name maps onto the simulation.

    `value`: the signal holding each series' value; `count`: the signal
    holding how many series exist (pods, GPUs, or 1 for a unit-level series);
    `counter`: only meaningful under rate()/irate()/increase().
    """

    value: str
    count: str
    counter: bool = False
    histogram: bool = False
    per_pod: str = ""


#: metric name -> simulated signal. Pod-level vLLM series exist for ready pods;
#: DCGM series exist per GPU of every pod holding GPUs; kube-state-metrics and
#: llmgen's recording rules are one series per Deployment or cluster.
METRICS: dict[str, Metric] = {
    "vllm:num_requests_waiting": Metric("waiting_pp", "ready"),
    "vllm:num_requests_running": Metric("running_pp", "ready"),
    "vllm:num_requests_swapped": Metric("zero", "ready"),
    "vllm:kv_cache_usage_perc": Metric("kv_pp", "ready"),
    "vllm:gpu_cache_usage_perc": Metric("kv_pp", "ready"),
    "vllm:request_success_total": Metric("success_rps_pp", "ready", counter=True),
    "vllm:generation_tokens_total": Metric("gen_tps_pp", "ready", counter=True),
    "vllm:prompt_tokens_total": Metric("prompt_tps_pp", "ready", counter=True),
    "vllm:time_to_first_token_seconds_bucket": Metric("ttft", "ready", histogram=True),
    "vllm:e2e_request_latency_seconds_bucket": Metric("e2e", "ready", histogram=True),
    "vllm:request_queue_time_seconds_bucket": Metric("qwait", "ready", histogram=True),
    "DCGM_FI_DEV_GPU_UTIL": Metric("duty_series", "gpu_series", per_pod="gpus_per_pod"),
    "istio_requests_total": Metric("gateway_rps", "one", counter=True),
    "kube_deployment_status_replicas": Metric("pods", "one"),
    "kube_deployment_spec_replicas": Metric("desired", "one"),
    "kube_deployment_status_replicas_available": Metric("ready", "one"),
    "kube_deployment_status_replicas_ready": Metric("ready", "one"),
    "kube_deployment_status_replicas_unavailable": Metric("unready", "one"),
    # A multi-node model's LeaderWorkerSet: its leader StatefulSet has one pod per group.
    "kube_statefulset_status_replicas": Metric("pods", "one"),
    "kube_statefulset_status_replicas_available": Metric("ready", "one"),
    "model:llmgen_gpus:count": Metric("unit_gpus", "one"),
    "model:llmgen_usd_per_hour:sum": Metric("unit_usd", "one"),
    "team:llmgen_usd_per_hour:sum": Metric("cluster_usd", "one"),
    "environment:llmgen_usd_per_hour:sum": Metric("cluster_usd", "one"),
    "environment:llmgen_budget_usd_per_month:allotment": Metric("cluster_budget", "one"),
}

Eval = Callable[[Signals, int], Vec]


@dataclass
class _Ctx:
    """What compiling collects: the shape (structure, fixed parameters) and the
    lifted numbers, so queries differing only in numbers share one evaluator."""

    shape: list[str]
    constants: list[float]
    #: the simulated signals the query reads
    reads: set[str] = field(default_factory=set)


def _const(ctx: _Ctx, value: float) -> Eval:
    key = f"#{len(ctx.constants)}"
    ctx.constants.append(value)
    ctx.shape.append(key)

    def run(s: Signals, g: int) -> Vec:
        return Vec(s[key], s["one"], s["true"], True)

    return run


def _istio_value(vs: pp.VectorSelector) -> str:
    labels = {m.name: m.value for m in vs.matchers.matchers}
    if "response_code" in labels:
        return "shed_rps" if labels["response_code"].startswith("5") else "served_rps"
    return "served_rps" if labels.get("reporter") == "destination" else "gateway_rps"


def _selector(ctx: _Ctx, vs: pp.VectorSelector, in_rate: bool) -> Eval:
    name = vs.name or ""
    metric = METRICS.get(name)
    if metric is None:
        raise QueryError(f"metric {name!r} is not simulated")
    if metric.histogram:
        raise QueryError(f"{name} is only simulated inside histogram_quantile()")
    if metric.counter and not in_rate:
        raise QueryError(f"counter {name} is only simulated under rate()/irate()/increase()")
    value = _istio_value(vs) if name == "istio_requests_total" else metric.value
    ctx.shape.append(f"sel:{name}:{value}:{in_rate}")
    ctx.reads.update({value, metric.count, metric.per_pod} - {""})

    per_pod = metric.per_pod

    def run(s: Signals, g: int) -> Vec:
        n = s[metric.count]
        return Vec(s[value], n, n > 0, False, s[per_pod] if per_pod else None)

    return run


def _histogram_name(node: object) -> str:
    """The histogram metric inside histogram_quantile()'s second argument."""
    if isinstance(node, pp.VectorSelector):
        name = node.name or ""
        if METRICS.get(name, Metric("", "")).histogram:
            return name
        raise QueryError(f"histogram_quantile() over {name!r} is not simulated")
    if isinstance(node, pp.MatrixSelector):
        return _histogram_name(node.vector_selector)
    if isinstance(node, pp.Call):
        return _histogram_name(node.args[0])
    if isinstance(node, pp.AggregateExpr):
        return _histogram_name(node.expr)
    if isinstance(node, pp.ParenExpr):
        return _histogram_name(node.expr)
    raise QueryError(f"histogram_quantile() over {type(node).__name__} is not simulated")


def _quantile(ctx: _Ctx, q: float, hist: str) -> Eval:
    """Latencies are modelled as base + exponential tail (see serving.py)."""
    metric = METRICS[hist]
    tail = -math.log(max(1.0 - q, 1e-9))
    ctx.shape.append(f"quantile:{q}:{hist}")
    ctx.reads.update({metric.count, metric.value + "_base", metric.value + "_mean", "served_rps"})

    def run(s: Signals, g: int) -> Vec:
        n = s[metric.count]
        base, mean = s[metric.value + "_base"], s[metric.value + "_mean"]
        # No requests in the window: every bucket rate is 0 and the quantile is NaN.
        val = np.where(s["served_rps"] > 0, base + mean * tail, np.nan)
        return Vec(val, s["one"], n > 0)

    return run


def _aggregate(ctx: _Ctx, node: pp.AggregateExpr) -> Eval:
    op = str(node.op)
    labels = list(node.modifier.labels) if node.modifier is not None else []
    by_pod = node.modifier is not None and str(node.modifier.type) != "without" and "pod" in labels
    ctx.shape.append(f"agg:{op}:{by_pod}(")
    inner = _compile(ctx, node.expr, False)
    ctx.shape.append(")")

    def run(s: Signals, g: int) -> Vec:
        v = inner(s, g)
        if by_pod:
            # One group per pod, each of `per_pod` identical series.
            per = v.per_pod if v.per_pod is not None else s["one"]
            n = v.n / per
            if op == "sum":
                val = v.val * per
            elif op == "count":
                val = per.astype(np.float64)
            else:
                val = v.val
            return Vec(val, n, v.present)
        one = s["one"]
        if op == "sum":
            return Vec(v.val * v.n, one, v.present)
        if op == "count":
            return Vec(v.n.astype(np.float64), one, v.present)
        if op in ("avg", "max", "min"):
            return Vec(v.val, one, v.present)
        raise QueryError(f"aggregation {op}() is not simulated")

    return run


_ARITH: dict[str, Callable[[Array, Array], Array]] = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": np.divide,
    "%": np.fmod,
    "^": np.power,
}
_CMP: dict[str, Callable[[Array, Array], Mask]] = {
    "==": np.equal,
    "!=": np.not_equal,
    ">": np.greater,
    "<": np.less,
    ">=": np.greater_equal,
    "<=": np.less_equal,
}


def _binary(ctx: _Ctx, node: pp.BinaryExpr) -> Eval:
    op = str(node.op)
    as_bool = node.modifier is not None and bool(node.modifier.return_bool)
    ctx.shape.append(f"bin:{op}:{as_bool}(")
    lhs = _compile(ctx, node.lhs, False)
    ctx.shape.append(",")
    rhs = _compile(ctx, node.rhs, False)
    ctx.shape.append(")")

    def run(s: Signals, g: int) -> Vec:
        a, b = lhs(s, g), rhs(s, g)
        if op == "or":
            return Vec(
                np.where(a.present, a.val, b.val),
                np.where(a.present, a.n, b.n),
                a.present | b.present,
            )
        if op == "and":
            return Vec(a.val, a.n, a.present & b.present)
        if op == "unless":
            return Vec(a.val, a.n, a.present & ~b.present)
        scalar = a.scalar and b.scalar
        n = b.n if a.scalar else a.n
        present = a.present & b.present
        if op in _CMP:
            hit = _CMP[op](a.val, b.val)
            if as_bool or scalar:
                return Vec(hit.astype(np.float64), n, present, scalar)
            # A filter keeps the vector side's value where the comparison holds.
            keep = b.val if a.scalar else a.val
            return Vec(keep, n, present & hit)
        fn = _ARITH.get(op)
        if fn is None:
            raise QueryError(f"operator {op} is not simulated")
        return Vec(fn(a.val, b.val), n, present, scalar)

    return run


def _call(ctx: _Ctx, node: pp.Call) -> Eval:
    name = node.func.name
    args = list(node.args)
    ctx.shape.append(
        f"call:{name}:"
        + ",".join(str(float(a.val)) for a in args[1:] if isinstance(a, pp.NumberLiteral))
        + "("
    )
    try:
        return _call_inner(ctx, name, args)
    finally:
        ctx.shape.append(")")


def _call_inner(ctx: _Ctx, name: str, args: list[Any]) -> Eval:
    if name == "vector":
        inner = _compile(ctx, args[0], False)
        return lambda s, g: Vec(inner(s, g).val, s["one"], s["true"])
    if name == "scalar":
        inner = _compile(ctx, args[0], False)

        def scalar(s: Signals, g: int) -> Vec:
            v = inner(s, g)
            ok = v.present & (v.n == 1)
            return Vec(np.where(ok, v.val, np.nan), s["one"], s["true"], True)

        return scalar
    if name == "histogram_quantile":
        if not isinstance(args[0], pp.NumberLiteral):
            raise QueryError("histogram_quantile() needs a literal quantile")
        return _quantile(ctx, float(args[0].val), _histogram_name(args[1]))
    if name in (
        "rate",
        "irate",
        "increase",
        "avg_over_time",
        "max_over_time",
        "min_over_time",
        "last_over_time",
    ):
        arg = args[0]
        if not isinstance(arg, pp.MatrixSelector):
            raise QueryError(f"{name}() of a subquery is not simulated")
        inner = _selector(ctx, arg.vector_selector, name in ("rate", "irate", "increase"))
        if name == "increase":
            seconds = arg.range.total_seconds()
            ctx.shape.append(f"range:{seconds}")
            return lambda s, g: _scaled(inner(s, g), seconds)
        return inner
    if name in ("abs", "ceil", "floor", "round", "clamp_min", "clamp_max", "absent"):
        inner = _compile(ctx, args[0], False)
        extra = [float(a.val) for a in args[1:] if isinstance(a, pp.NumberLiteral)]

        def fn(s: Signals, g: int) -> Vec:
            v = inner(s, g)
            if name == "absent":
                return Vec(s["one"], s["one"], ~v.present)
            ops: dict[str, Callable[[Array], Array]] = {
                "abs": np.abs,
                "ceil": np.ceil,
                "floor": np.floor,
                "round": np.round,
                "clamp_min": lambda x: np.maximum(x, extra[0]),
                "clamp_max": lambda x: np.minimum(x, extra[0]),
            }
            val = ops[name](v.val)
            return Vec(val, v.n, v.present, v.scalar)

        return fn
    raise QueryError(f"function {name}() is not simulated")


def _scaled(v: Vec, factor: float) -> Vec:
    return Vec(v.val * factor, v.n, v.present, v.scalar)


def _compile(ctx: _Ctx, node: object, in_rate: bool) -> Eval:
    if isinstance(node, pp.NumberLiteral):
        return _const(ctx, float(node.val))
    if isinstance(node, pp.ParenExpr):
        return _compile(ctx, node.expr, in_rate)
    if isinstance(node, pp.UnaryExpr):
        ctx.shape.append("neg")
        inner = _compile(ctx, node.expr, in_rate)
        return lambda s, g: _scaled(inner(s, g), -1.0)
    if isinstance(node, pp.VectorSelector):
        return _selector(ctx, node, in_rate)
    if isinstance(node, pp.AggregateExpr):
        return _aggregate(ctx, node)
    if isinstance(node, pp.BinaryExpr):
        return _binary(ctx, node)
    if isinstance(node, pp.Call):
        return _call(ctx, node)
    raise QueryError(f"{type(node).__name__} is not simulated")


@dataclass(frozen=True)
class Query:
    """One compiled trigger query. `run` returns (value, error) arrays per unit.

    `error` is KEDA's scaler error: an empty or multi-element result, or ±Inf,
    when `ignore_nulls` is off. With it on, those read 0 without an error.
    """

    text: str
    evaluate: Eval
    shape: str
    constants: tuple[float, ...]
    reads: frozenset[str] = frozenset()

    def run(self, s: Signals, g: int, ignore_nulls: npt.NDArray[np.bool_]) -> tuple[Array, Mask]:
        v = self.evaluate(s, g)
        single = v.present & (v.scalar | (v.n <= 1))
        finite = single & np.isfinite(v.val)
        multiple = v.present & (v.n > 1) if not v.scalar else np.zeros(g, dtype=bool)
        bad = ~finite & ~multiple
        value = np.where(finite, v.val, 0.0)
        error = multiple | (bad & ~ignore_nulls)
        return value, error


def compile_query(text: str) -> Query:
    """Parse and compile one trigger query; QueryError when it is not simulated."""
    try:
        tree = pp.parse(text)
    except Exception as exc:  # promql-parser raises a bare Exception subclass
        raise QueryError(f"does not parse: {exc}") from exc
    ctx = _Ctx([], [])
    run = _compile(ctx, tree, False)
    return Query(text, run, "".join(ctx.shape), tuple(ctx.constants), frozenset(ctx.reads))
