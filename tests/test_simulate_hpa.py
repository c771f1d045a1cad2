"""The HPA arithmetic of `llmgen simulate`, against the Kubernetes documentation.

Every expectation below is a worked example from
kubernetes/website `content/en/docs/tasks/run-application/horizontal-pod-autoscale.md`
(quoted), run through `simulate.hpa`, which follows
kubernetes `pkg/controller/podautoscaler/horizontal.go` and `replica_calculator.go`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from llmgen.simulate.hpa import DEFAULT_DOWN, DEFAULT_UP, Direction, Hpa, desired_replicas


def one(x: float) -> np.ndarray:
    return np.array([float(x)])


def replicas_over_time(
    start: int,
    desired: list[int],
    up: dict[str, Any] | None = None,
    down: dict[str, Any] | None = None,
    step: float = 15.0,
    low: int = 1,
    high: int = 1000,
) -> list[int]:
    hpa = Hpa(
        Direction.of([up or {}], DEFAULT_UP), Direction.of([down or {}], DEFAULT_DOWN), step, 1
    )
    current = one(start)
    out = []
    for d in desired:
        current = hpa.normalize(one(d), current, one(low), one(high), np.array([True]))
        out.append(int(current[0]))
    return out


def test_ratio_doubles_halves_and_tolerates() -> None:
    # "if the current metric value is 200m, and the desired value is 100m, the
    # number of replicas will be doubled ... If the current value is instead
    # 50m, you'll halve the number of replicas ... The control plane skips any
    # scaling action if the ratio is sufficiently close to 1.0 (within a
    # globally-configurable tolerance, 0.1 by default)."
    # KEDA's composite is an AverageValue external metric: the total is
    # compared with target x replicas.
    avg = np.array([True])
    for per_pod, expected in ((0.200, 8), (0.050, 2), (0.109, 4), (0.111, 5), (0.091, 4)):
        got = desired_replicas(one(per_pod * 4), one(0.1), one(4), avg)
        assert int(got[0]) == expected, (per_pod, got)
    # Outside the tolerance the replicas are ceil(total / target):
    assert int(desired_replicas(one(0.085 * 4), one(0.1), one(4), avg)[0]) == 4  # ceil(3.4)
    assert int(desired_replicas(one(0.07 * 4), one(0.1), one(4), avg)[0]) == 3  # ceil(2.8)


def test_value_metric_uses_the_ratio_times_replicas() -> None:
    # A Value target: desired = ceil(ratio x current replicas) outside the tolerance.
    val = np.array([False])
    assert int(desired_replicas(one(200), one(100), one(3), val)[0]) == 6
    assert int(desired_replicas(one(105), one(100), one(3), val)[0]) == 3


def test_scale_down_policies_pick_the_largest_change() -> None:
    # "if there are 80 replicas and the target has to be scaled down to 10
    # replicas then during the first step 8 replicas will be reduced. In the
    # next iteration when the number of replicas is 72, 10% of the pods is 7.2
    # but the number is rounded up to 8. ... When the number of replicas falls
    # below 40 the first policy (Pods) is applied and 4 replicas will be
    # reduced at a time."
    down = {
        "stabilizationWindowSeconds": 0,
        "policies": [
            {"type": "Pods", "value": 4, "periodSeconds": 60},
            {"type": "Percent", "value": 10, "periodSeconds": 60},
        ],
    }
    got = replicas_over_time(80, [10] * 12, down=down, step=60.0)
    assert got[:2] == [72, 64]
    assert got[5:8] == [40, 36, 32]  # at 40 both allow 4; below 40 the Pods policy wins


def test_a_policy_period_limits_the_change_across_steps() -> None:
    # periodSeconds: "the length of time in the past for which the policy must
    # hold true": with 15 s syncs, the 60 s policy allows one change a minute.
    down = {
        "stabilizationWindowSeconds": 0,
        "policies": [{"type": "Percent", "value": 10, "periodSeconds": 60}],
    }
    assert replicas_over_time(80, [10] * 8, down=down, step=15.0) == [
        72,
        72,
        72,
        72,
        64,
        64,
        64,
        64,
    ]


def test_select_policy_min_removes_at_most_five_a_minute() -> None:
    # "To ensure that no more than 5 Pods are removed per minute, you can add a
    # second scale-down policy with a fixed size of 5, and set selectPolicy to
    # minimum."
    down = {
        "stabilizationWindowSeconds": 0,
        "selectPolicy": "Min",
        "policies": [
            {"type": "Percent", "value": 10, "periodSeconds": 60},
            {"type": "Pods", "value": 5, "periodSeconds": 60},
        ],
    }
    got = replicas_over_time(100, [10] * 3, down=down, step=60.0)
    assert got == [95, 90, 85]


def test_disabled_scale_down() -> None:
    # "The selectPolicy value of Disabled turns off scaling the given direction."
    got = replicas_over_time(10, [2] * 5, down={"selectPolicy": "Disabled"}, step=60.0)
    assert got == [10] * 5


def test_default_scale_up_doubles_or_adds_four_every_15_seconds() -> None:
    # "There are 2 policies where 4 pods or a 100% of the currently running
    # replicas will be added every 15 seconds till the HPA reaches its steady state."
    assert replicas_over_time(1, [100] * 4, step=15.0) == [5, 10, 20, 40]


def test_default_scale_down_window_keeps_the_highest_recommendation() -> None:
    # "When the metrics indicate that the target should be scaled down the
    # algorithm looks into previously computed desired states, and uses the
    # highest value from the specified interval" (300 s by default).
    got = replicas_over_time(10, [10] + [2] * 24, step=15.0)
    assert got[:20] == [10] * 20  # the 10 recommended at t=0 stays inside the window
    assert got[20] == 2  # 300 s later it has left the window: 100 % per 15 s allows all


def test_min_and_max_bound_the_result() -> None:
    assert replicas_over_time(3, [50], step=60.0, high=5) == [5]
    assert replicas_over_time(3, [0], down={"stabilizationWindowSeconds": 0}, low=2) == [2]
