"""The discrete-time loop: traffic -> serving -> metrics -> KEDA -> HPA -> pods -> nodes.

All units of an environment advance together, one numpy operation per rule
per step, so a day at one-minute steps for hundreds of Deployments takes
well under a second or two. Each step, in the order the controllers act:

1. DNS sends each gateway its share of a model's traffic (routing weights,
   renormalised over clusters that are up); the gateway serves locally when
   the cluster has a ready replica, else fails over along the mesh's order,
   else answers 503 (nothing holds requests during a cold start).
2. Each unit serves its arrivals plus its backlog (`serving.serve`).
3. The trigger queries read the simulated series (`promsignals`), the formula
   combines them (`exprlang`), KEDA decides activity and fallback, the HPA
   normalises (`hpa`).
4. The ReplicaSet adds or removes pods (pending first, then newest), the node
   autoscaler adds nodes within the pool's limit and removes empty ones after
   the rendered `consolidateAfter` (GKE: 10 minutes), pods become ready after
   their cold start.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from .fleet import Fleet
from .hpa import DEFAULT_DOWN, DEFAULT_UP, HPA_SYNC_SECONDS, Direction, Hpa, desired_replicas
from .scalers import Scalers
from .serving import Replica, p95, serve
from .setup import Slot, Unit
from .traffic import Load

Array = npt.NDArray[np.float64]
SERIES = (
    "replicas",
    "ready",
    "queue",
    "latency_p95",
    "gpus",
    "usd_per_hour",
    "arrivals",
    "completed",
    "tokens",
)


@dataclass(frozen=True)
class Outage:
    """A cluster marked down from `start` up to (not including) `end` minutes."""

    cluster: str
    start: int
    end: int


@dataclass
class Result:
    units: list[Unit]
    load: Load
    step: float
    series: dict[str, Array]  # name -> (units, minutes)
    shed: Array  # (models, minutes) requests/s answered 503
    outages: tuple[Outage, ...] = ()
    notes: list[str] = field(default_factory=list)


def _bincount(idx: npt.NDArray[np.int64], weights: Array, minlength: int) -> Array:
    """Weighted sums per index, as floats."""
    return np.asarray(np.bincount(idx, weights=weights, minlength=minlength), dtype=np.float64)


class Simulation:
    """The state of every unit of one environment."""

    def __init__(self, units: list[Unit], slots: list[Slot], load: Load, step: float) -> None:
        self.units, self.slots, self.load, self.step = units, slots, load, step
        n = len(units)
        self.n = n
        so = [u.so for u in units]
        f = np.array
        self.min_rep = f([s.min_replicas for s in so], dtype=np.float64)
        self.max_rep = f([s.max_replicas for s in so], dtype=np.float64)
        self.target = f([s.target for s in so])
        self.average = f([s.metric_type != "Value" for s in so])
        self.activation = f([s.activation for s in so])
        self.cooldown = f([s.cooldown_seconds for s in so])
        self.fb_threshold = f(
            [s.fallback_failures if s.fallback_failures is not None else 1e18 for s in so],
            dtype=np.float64,
        )
        self.fb_replicas = f([s.fallback_replicas for s in so], dtype=np.float64)
        self.fb_kind = [s.fallback_behavior for s in so]
        self.paused = f(
            [s.paused_replicas if s.paused_replicas is not None else -1 for s in so],
            dtype=np.float64,
        )
        self.node_usd = f([u.node_usd for u in units])
        self.gpus_per_node = f([u.gpus_per_node for u in units], dtype=np.float64)
        self.gpu_count = f([u.gpu_count for u in units], dtype=np.float64)
        self.gpu_usd = f([u.gpu_usd for u in units])
        self.embed = f([u.embed for u in units])
        self.slo = f([u.slo_seconds for u in units])
        self.model_row = f([load.row(u.model) for u in units], dtype=np.int64)
        clusters = sorted({u.cluster for u in units} | {s.cluster for s in slots})
        self.clusters = clusters
        self.cluster_idx = f([clusters.index(u.cluster) for u in units], dtype=np.int64)
        self.up = Direction.of([s.scale_up for s in so], DEFAULT_UP)
        self.down = Direction.of([s.scale_down for s in so], DEFAULT_DOWN)
        self.hpa = Hpa(self.up, self.down, step, n)
        self.scalers = Scalers(units)
        self.trigger_names = self.scalers.trigger_names
        self.reads = self.scalers.reads
        self._compile_slots()
        self.k = int(max([*self.max_rep, *self.fb_replicas, *self.paused, *self.min_rep, 1])) + 1
        self._last_replica: Replica | None = None
        self._one = np.ones(n)
        self._true = np.ones(n, dtype=bool)
        self._zero = np.zeros(n)
        self.reset()

    def _compile_slots(self) -> None:
        width = max([len(s.candidates) for s in self.slots] + [1])
        # (candidate rank, slot): reductions run along the short first axis
        self.cand = np.full((width, len(self.slots)), -1, dtype=np.int64)
        for i, s in enumerate(self.slots):
            self.cand[: len(s.candidates), i] = s.candidates
        self.cand_valid = self.cand >= 0
        self.cand_safe = np.maximum(self.cand, 0)
        self.slot_range = np.arange(len(self.slots))
        self.slot_model = np.array([self.load.row(s.model) for s in self.slots], dtype=np.int64)
        self.slot_cluster = np.array(
            [self.clusters.index(s.cluster) for s in self.slots], dtype=np.int64
        )
        self.slot_share = np.array([s.track_share for s in self.slots])
        self.cluster_share = np.zeros(len(self.clusters))
        for s in self.slots:
            self.cluster_share[self.clusters.index(s.cluster)] = s.cluster_share
        # gateway requests for a unit: every track of its model at its cluster's gateway
        pairs = [
            (i, u.index)
            for i, s in enumerate(self.slots)
            for u in self.units
            if u.model == s.model and u.cluster == s.cluster
        ]
        self.home_slot = np.array([p[0] for p in pairs], dtype=np.int64)
        self.home_unit = np.array([p[1] for p in pairs], dtype=np.int64)

    # --------------------------------------------------------------- state

    def reset(self) -> None:
        n = self.n
        start = np.where(self.paused >= 0, self.paused, self.min_rep)
        self.replicas = start.copy()
        self.fleet = Fleet(self.units, start, self.k)
        self.backlog = np.zeros(n)
        self.failures = np.zeros((len(self.trigger_names), n))
        self.last_active = np.zeros(n)
        self.now = 0.0
        self.was_down = np.zeros(len(self.clusters), dtype=bool)

    def step_once(self, minute: int, down: npt.NDArray[np.bool_]) -> dict[str, Array]:
        """Advance one step with the load of `minute`; return this step's figures."""
        now, dt = self.now, self.step
        unit_up = ~down[self.cluster_idx]
        fell = down & ~self.was_down
        if fell.any():
            gone = fell[self.cluster_idx]
            self.fleet.lose(gone)
            self.backlog[gone] = 0.0
        self.was_down = down.copy()

        fleet = self.fleet
        ready, scheduled = fleet.counts(now)
        ready = np.where(unit_up, ready, 0.0)
        pods = fleet.pods

        # 1. routing
        lam = self.load.rps[:, minute]
        up_share = self.cluster_share[~down].sum()
        gate_up = ~down[self.slot_cluster]
        rate = lam[self.slot_model] * self.slot_share * self.cluster_share[self.slot_cluster]
        rate = np.where(gate_up, rate / max(up_share, 1e-12), 0.0)
        alive_unit = (ready > 0) & unit_up
        alive = self.cand_valid & alive_unit[self.cand_safe]
        first = alive.argmax(axis=0)
        ok = alive.any(axis=0)
        target = self.cand[first, self.slot_range]
        arrivals = _bincount(target[ok], weights=rate[ok], minlength=self.n)
        shed = _bincount(self.slot_model[~ok], weights=rate[~ok], minlength=len(lam))
        gateway = _bincount(self.home_unit, weights=rate[self.home_slot], minlength=self.n)

        # 2. serving
        prompt = self.load.prompt[self.model_row, minute]
        output = np.where(self.embed, 0.0, self.load.output[self.model_row, minute])
        rep = self._replica(prompt, output)
        served = serve(rep, arrivals, ready, self.backlog, dt)
        self.backlog = served.queue
        n_ready = np.maximum(ready, 1.0)
        ttft = p95(served.ttft_base, served.ttft_mean)
        e2e = p95(served.e2e_base, served.e2e_mean)

        # 3. metrics, formula, KEDA, HPA (only the series some trigger reads)
        g = self.gpu_count
        lazy: dict[str, Callable[[], Array]] = {
            "ready": lambda: ready,
            "scheduled": lambda: scheduled,
            "pods": lambda: pods,
            "desired": lambda: self.replicas,
            "unready": lambda: pods - ready,
            "one": lambda: self._one,
            "true": lambda: self._true,
            "zero": lambda: self._zero,
            "waiting_pp": lambda: served.queue / n_ready,
            "running_pp": lambda: served.running,
            "kv_pp": lambda: served.kv,
            "duty_series": lambda: np.where(
                scheduled > 0, served.duty * ready / np.maximum(scheduled, 1), 0.0
            ),
            "gpu_series": lambda: scheduled * g,
            "gpus_per_pod": lambda: g,
            "success_rps_pp": lambda: served.completed / n_ready,
            "gen_tps_pp": lambda: served.completed * output / n_ready,
            "prompt_tps_pp": lambda: served.completed * prompt / n_ready,
            "gateway_rps": lambda: gateway,
            "served_rps": lambda: served.completed,
            "shed_rps": lambda: self._zero,
            "ttft_base": lambda: served.ttft_base,
            "ttft_mean": lambda: served.ttft_mean,
            "e2e_base": lambda: served.e2e_base,
            "e2e_mean": lambda: served.e2e_mean,
            "qwait_base": lambda: self._zero,
            "qwait_mean": lambda: served.qwait_mean,
            "unit_gpus": lambda: scheduled * g,
            "unit_usd": lambda: scheduled * g * self.gpu_usd,
            "cluster_usd": lambda: _bincount(
                self.cluster_idx,
                weights=scheduled * g * self.gpu_usd,
                minlength=len(self.clusters),
            )[self.cluster_idx],
            "cluster_budget": lambda: self._zero,
        }
        signals: dict[str, Array] = {key: lazy[key]() for key in self.reads}
        composite, errors = self.scalers.evaluate(signals)
        err_any = errors.any(axis=0)
        self.failures = np.where(errors, self.failures + dt / HPA_SYNC_SECONDS, 0.0)
        fallback = (self.failures > self.fb_threshold[None, :]).any(axis=0)

        active = ~err_any & (composite > self.activation)
        before = self.replicas.copy()
        free = unit_up & (self.paused < 0)
        self.last_active = np.where(active, now, self.last_active)
        wake = (before == 0) & active & free
        r = np.where(wake, np.maximum(self.min_rep, 1.0), before)
        # A scaler error keeps the replicas, unless a fallback of 0 replicas is set.
        has_fallback = self.fb_threshold < 1e18
        hold = err_any & ~(has_fallback & (self.fb_replicas == 0))
        sleep = (
            (before > 0)
            & ~active
            & ~hold
            & (self.min_rep == 0)
            & free
            & (now - self.last_active > self.cooldown)
        )
        r = np.where(sleep, 0.0, r)
        fb = (
            np.array(
                [
                    max(c, f)
                    if kind == "currentReplicasIfHigher"
                    else min(c, f)
                    if kind == "currentReplicasIfLower"
                    else c
                    if kind == "currentReplicas"
                    else f
                    for c, f, kind in zip(r, self.fb_replicas, self.fb_kind, strict=True)
                ]
            )
            if fallback.any()
            else r
        )
        usage = np.where(fallback, self.target * fb, composite)
        desired = desired_replicas(usage, self.target, np.maximum(pods, r), self.average)
        computed = (r > 0) & free & (~err_any | fallback)
        r = self.hpa.normalize(desired, r, np.maximum(self.min_rep, 1.0), self.max_rep, computed)
        self.replicas = np.where(self.paused >= 0, self.paused, r)

        # 4. pods and nodes
        fleet.reconcile(now, self.replicas, unit_up)
        self.now += dt
        latency = np.where(self.embed, e2e, ttft)
        has_traffic = arrivals > 0
        return {
            "replicas": self.replicas.copy(),
            "ready": ready,
            "queue": served.queue,
            "latency_p95": np.where(has_traffic, latency, np.nan),
            "gpus": fleet.nodes * self.gpus_per_node,
            "usd_per_hour": fleet.nodes * self.node_usd,
            "arrivals": arrivals,
            "completed": served.completed,
            "tokens": served.completed * (prompt + output) * dt,
            "shed": shed,
        }

    def _replica(self, prompt: Array, output: Array) -> Replica:
        """The units' serving constants for these token counts (reused while they hold)."""
        last = self._last_replica
        if (
            last is not None
            and np.array_equal(last.prompt, prompt)
            and np.array_equal(last.output, output)
        ):
            return last
        u = self.units
        f = np.array
        if not hasattr(self, "_consts"):
            self._consts = (
                f([x.weights_bytes for x in u]), f([x.kv_token for x in u]),
                f([x.bandwidth for x in u]), f([x.flops for x in u]), f([x.params for x in u]),
                f([x.max_seqs for x in u]), f([x.kv_capacity for x in u]),
            )  # fmt: skip
        w, kv, bw, fl, pa, ms, cap = self._consts
        self._last_replica = Replica(w, kv, bw, fl, pa, ms, cap, prompt, output)
        return self._last_replica


def run(
    units: list[Unit],
    slots: list[Slot],
    load: Load,
    outages: tuple[Outage, ...] = (),
    step: float = 60.0,
    warmup_minutes: int = 60,
) -> Result:
    """Simulate `load` (after a warm-up at its first minute's load) and collect figures."""
    sim = Simulation(units, slots, load, step)
    steps_per_minute = max(int(round(60.0 / step)), 1)
    none_down = np.zeros(len(sim.clusters), dtype=bool)
    for _ in range(warmup_minutes * steps_per_minute):
        sim.step_once(0, none_down)
    minutes = load.minutes
    rows = {name: np.zeros((minutes, len(units))) for name in (*SERIES, "shed")}
    rows["shed"] = np.zeros((minutes, len(load.models)))
    for minute in range(minutes):
        down = none_down.copy()
        for o in outages:
            if o.start <= minute < o.end and o.cluster in sim.clusters:
                down[sim.clusters.index(o.cluster)] = True
        for _ in range(steps_per_minute):
            fig = sim.step_once(minute, down)
            for key, value in fig.items():
                if steps_per_minute == 1:
                    rows[key][minute] = value
                else:
                    rows[key][minute] += value
    for key, value in rows.items():
        if key != "tokens" and steps_per_minute > 1:
            value /= steps_per_minute
    series = {name: rows[name].T for name in SERIES}
    return Result(units, load, step, series, rows["shed"].T, outages)
