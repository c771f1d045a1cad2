"""The HorizontalPodAutoscaler and KEDA's scale-to-zero loop, vectorised over units.

Every rule here follows the upstream source at the versions llmgen pins, so
the simulation scales the way the cluster will:

- Kubernetes `pkg/controller/podautoscaler/replica_calculator.go`
  (`GetExternalPerPodMetricReplicas`, `GetExternalMetricReplicas`): for an
  `AverageValue` external metric, usageRatio = value / (target x replicas);
  within the tolerance (0.1) the replicas stay, else ceil(value / target).
  For `Value`: ceil(ratio x replicas) outside the tolerance. Metric values are
  milli-quantities (KEDA sets the composite with `SetMilli(int64(v*1000))`).
- `horizontal.go` `stabilizeRecommendationWithBehaviors`: the scale-up bound
  is the lowest recommendation within the scale-up window, the scale-down
  bound the highest within the scale-down window; then
  `convertDesiredReplicasWithBehaviorRate` caps the change per policy period
  (Pods: +/- value; Percent: ceil(start x (1+v/100)) up, int(start x (1-v/100))
  down; `selectPolicy` Max/Min/Disabled), then minReplicas/maxReplicas.
- Defaults without `behavior`: down 300 s, 100 %/15 s; up 0 s, max(100 %, 4 pods)/15 s.
- KEDA v2.18.1 `pkg/scaling/executor/scale_scaledobjects.go`: an active
  ScaledObject at 0 replicas goes to max(minReplicaCount, 1); an inactive one
  goes to 0 once `lastActiveTime + cooldownPeriod` has passed (not while a
  scaler errors and `fallback.replicas` is set); the HPA's minimum is
  max(minReplicaCount, 1). `pkg/fallback/fallback.go`: after more than
  `failureThreshold` consecutive failed metric reads the composite becomes
  target x replicas (currentReplicasIfHigher: max(current, fallback.replicas)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]

TOLERANCE = 0.1
#: kube-controller-manager's --horizontal-pod-autoscaler-sync-period default
HPA_SYNC_SECONDS = 15

PODS, PERCENT = 1, 2
SELECT_MAX, SELECT_MIN, SELECT_DISABLED = 0, 1, 2
_SELECT = {"Max": SELECT_MAX, "Min": SELECT_MIN, "Disabled": SELECT_DISABLED}
DEFAULT_UP = {
    "stabilizationWindowSeconds": 0,
    "selectPolicy": "Max",
    "policies": [
        {"type": "Percent", "value": 100, "periodSeconds": 15},
        {"type": "Pods", "value": 4, "periodSeconds": 15},
    ],
}
DEFAULT_DOWN = {
    "stabilizationWindowSeconds": 300,
    "selectPolicy": "Max",
    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
}


@dataclass(frozen=True)
class Direction:
    """One direction's rules for every unit (row = policy, column = unit: numpy
    reduces fastest along the first axis of small matrices)."""

    window: Array
    select: npt.NDArray[np.int64]
    kind: npt.NDArray[np.int64]
    value: Array
    period: Array

    @classmethod
    def of(cls, rules: list[dict[str, Any]], default: dict[str, Any]) -> Direction:
        """From each unit's `behavior.scaleUp`/`scaleDown` (missing fields: the defaults)."""
        merged = [{**default, **r} for r in rules]
        width = max([len(list(r.get("policies") or [])) for r in merged] + [1])
        n = len(merged)
        kind = np.zeros((width, n), dtype=np.int64)
        value = np.zeros((width, n))
        period = np.ones((width, n))
        for i, r in enumerate(merged):
            for j, p in enumerate(list(r.get("policies") or [])):
                kind[j, i] = PODS if p["type"] == "Pods" else PERCENT
                value[j, i] = float(p["value"])
                period[j, i] = float(p["periodSeconds"])
        window = np.array([float(str(r.get("stabilizationWindowSeconds", 0))) for r in merged])
        select = np.array([_SELECT[str(r.get("selectPolicy") or "Max")] for r in merged])
        return cls(window, select, kind, value, period)

    def horizon(self) -> float:
        return float(max(self.window.max(initial=0.0), self.period.max(initial=0.0)))


def desired_replicas(
    usage: Array, target: Array, status: Array, average: Mask, tolerance: float = TOLERANCE
) -> Array:
    """The HPA's replicas for one external metric, from milli-unit arithmetic.

    `usage` and `target` are the metric and its target in whole units; they
    are converted to milli-units as the HPA sees them.
    """
    u = np.trunc(usage * 1000.0)
    t = np.maximum(np.trunc(target * 1000.0), 1.0)
    status = np.maximum(status, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(average, u / (t * status), u / t)
        grown = np.where(average, np.ceil(u / t), np.ceil(ratio * status))
    return np.where(np.abs(ratio - 1.0) <= tolerance, status, grown)


@dataclass
class Hpa:
    """The HPA controller's memory (recommendations, scale events) for every unit.

    Time advances one `step` per `normalize` call. Recommendations sit in a
    ring of the last `slots` steps; scale events are kept as running totals,
    so "replicas added within the last period" is a difference of two totals.
    """

    up: Direction
    down: Direction
    step: float
    units: int
    slots: int = 0
    tick: int = 0
    recs: Array = field(init=False)
    when: Array = field(init=False)
    added: Array = field(init=False)
    deleted: Array = field(init=False)

    def __post_init__(self) -> None:
        horizon = max(self.up.horizon(), self.down.horizon(), self.step)
        self.slots = int(math.ceil(horizon / self.step)) + 2
        self.recs = np.full((self.slots, self.units), np.nan)
        self.when = np.full(self.slots, -1e18)
        # running totals of replicas added / deleted, as of the end of each step
        self.added = np.zeros((self.slots, self.units))
        self.deleted = np.zeros((self.slots, self.units))
        self._added_total = np.zeros(self.units)
        self._deleted_total = np.zeros(self.units)
        self._cols = np.arange(self.units)[None, :]
        self._lookback = {
            id(d): np.ceil(d.period / self.step).astype(np.int64) - 1 for d in (self.up, self.down)
        }
        self._up_window = self.up.window[None, :]
        self._down_window = self.down.window[None, :]

    def _changes(self, rules: Direction) -> tuple[Array, Array]:
        """Replicas added and deleted in each policy's period before now.

        getReplicasChangePerPeriod counts events strictly after now - period:
        with one event per step, the last ceil(period / step) - 1 steps.
        """
        back = self._lookback[id(rules)]
        last = self.tick - 1
        first = last - back
        if last < 0:
            zero = np.zeros(back.shape)
            return zero, zero
        col_last = last % self.slots
        col_first = np.mod(first, self.slots)
        valid = first >= 0
        added = self.added[col_last][None, :] - np.where(
            valid, self.added[col_first, self._cols], 0.0
        )
        deleted = self.deleted[col_last][None, :] - np.where(
            valid, self.deleted[col_first, self._cols], 0.0
        )
        return added, deleted

    def _limit(self, current: Array, rules: Direction, up: bool) -> Array:
        added, deleted = self._changes(rules)
        start = current[None, :] - added + deleted
        if up:
            pct = np.ceil(start * (1.0 + rules.value / 100.0))
            proposed = np.where(rules.kind == PODS, start + rules.value, pct)
        else:
            pct = np.trunc(start * (1.0 - rules.value / 100.0))
            proposed = np.where(rules.kind == PODS, start - rules.value, pct)
        used = rules.kind > 0
        high = np.where(used, proposed, -np.inf).max(axis=0)
        low = np.where(used, proposed, np.inf).min(axis=0)
        # Max picks the largest change: the highest bound up, the lowest bound down.
        widest, narrowest = (high, low) if up else (low, high)
        limit = np.where(rules.select == SELECT_MIN, narrowest, widest)
        return np.where(rules.select == SELECT_DISABLED, current, limit)

    def normalize(
        self, desired: Array, current: Array, low: Array, high: Array, run: Mask
    ) -> Array:
        """`normalizeDesiredReplicasWithBehaviors` for the units where `run` holds.

        Records the recommendation and the resulting scale event; units where
        the HPA did not compute (no metric, 0 replicas) keep `current`.
        """
        ages = ((self.tick - self.when) * self.step)[:, None]
        recs = self.recs
        up_rec = np.minimum(desired, np.where(ages < self._up_window, recs, np.inf).min(axis=0))
        down_rec = np.maximum(
            desired, np.where(ages < self._down_window, recs, -np.inf).max(axis=0)
        )
        # NaN (no recommendation that step) compares false and is skipped by fmin/fmax.
        up_rec = np.where(np.isnan(up_rec), desired, up_rec)
        down_rec = np.where(np.isnan(down_rec), desired, down_rec)
        rec = np.minimum(np.maximum(current, up_rec), down_rec)

        up_limit = np.maximum(self._limit(current, self.up, True), current)
        down_limit = np.minimum(self._limit(current, self.down, False), current)
        out = np.where(rec > current, np.minimum(rec, np.minimum(high, up_limit)), rec)
        out = np.where(rec < current, np.maximum(rec, np.maximum(low, down_limit)), out)
        # reconcileAutoscaler: outside [min, max] the HPA goes straight to the bound.
        out = np.where(current > high, high, np.where(current < low, low, out))
        out = np.where(run, out, current)

        col = self.tick % self.slots
        self.recs[col] = np.where(run, desired, np.nan)
        self.when[col] = self.tick
        change = out - current
        self._added_total = self._added_total + np.maximum(change, 0.0)
        self._deleted_total = self._deleted_total + np.maximum(-change, 0.0)
        self.added[col] = self._added_total
        self.deleted[col] = self._deleted_total
        self.tick += 1
        return out
