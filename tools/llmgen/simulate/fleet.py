"""Pods and nodes: the ReplicaSet, the node autoscaler and cold starts, for every unit.

Pods are rows of a (pod slot, unit) matrix holding when each pod is ready
(NaN: no pod; PENDING: waiting for a node) and when its GPUs are attached.
Scale-down removes pending pods first, then the newest (the ReplicaSet's
order). A pending pod takes a free slot on a node its Deployment holds
(ready after the pod's cold start) or a new node within the pool's limit
(after provisioning as well). Nodes with no pod go after the pool's
`consolidateAfter`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .setup import NODE_PROVISION_SECONDS, Unit

Array = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]
PENDING = 1e18


class Fleet:
    def __init__(self, units: list[Unit], start: Array, slots: int) -> None:
        f = np.array
        self.k = slots
        self.per_node = f([u.per_node for u in units], dtype=np.float64)
        self.empty_seconds = f([u.empty_node_seconds for u in units])
        self.cold_new = f([u.cold_new_node for u in units])
        self.cold_old = f([u.cold_existing_node for u in units])
        pools = sorted({u.pool_key for u in units})
        self.pool_idx = f([pools.index(u.pool_key) for u in units], dtype=np.int64)
        caps = {u.pool_key: u.node_cap for u in units}
        self.pool_cap = f([caps[p] for p in pools], dtype=np.float64)
        have = np.arange(slots)[:, None] < start[None, :]
        self.ready_at = np.where(have, -1e18, np.nan)
        self.gpu_at = self.ready_at.copy()
        self.nodes = np.ceil(start / self.per_node)
        self.excess_since = np.full(len(units), np.nan)
        self.pods = start.astype(np.float64)
        self._busy = False

    def counts(self, now: float) -> tuple[Array, Array]:
        """Ready pods, and pods holding GPUs, per unit."""
        ready = (self.ready_at <= now).sum(axis=0).astype(np.float64)
        scheduled = (self.gpu_at <= now).sum(axis=0).astype(np.float64)
        return ready, scheduled

    def lose(self, gone: Mask) -> None:
        """The units' cluster went down: its pods and nodes are gone."""
        self.ready_at[:, gone] = np.nan
        self.gpu_at[:, gone] = np.nan
        self.nodes[gone] = 0.0
        self.pods[gone] = 0.0
        self._busy = True

    def reconcile(self, now: float, replicas: Array, unit_up: Mask) -> None:
        """Bring pods to `replicas` where the cluster is up; place, provision, consolidate."""
        col = np.arange(self.k)[:, None]
        want = np.where(unit_up, replicas, 0.0)
        have = self.pods
        if not self._busy and np.array_equal(have, want):
            return
        if (have > want).any():
            order = np.argsort(self.ready_at, axis=0)
            self.ready_at = np.take_along_axis(self.ready_at, order, axis=0)
            self.gpu_at = np.take_along_axis(self.gpu_at, order, axis=0)
            drop = (col >= want[None, :]) & unit_up[None, :]
            self.ready_at[drop] = np.nan
            self.gpu_at[drop] = np.nan
            have = (~np.isnan(self.ready_at)).sum(axis=0)
        grow = (col >= have[None, :]) & (col < want[None, :])
        self.ready_at[grow] = PENDING
        self.gpu_at[grow] = PENDING
        pending = self.ready_at == PENDING
        n_pending = pending.sum(axis=0).astype(np.float64)
        placed = (~np.isnan(self.ready_at)).sum(axis=0) - n_pending
        free_slots = np.maximum(self.nodes * self.per_node - placed, 0.0)
        need = np.ceil(np.maximum(n_pending - free_slots, 0.0) / self.per_node)
        need = np.where(unit_up, need, 0.0)
        self._grant(need)
        self.nodes += need
        on_old = np.minimum(free_slots, n_pending)
        on_new = np.minimum(need * self.per_node, n_pending - on_old)
        rank = np.cumsum(pending, axis=0)
        old = pending & (rank <= on_old[None, :])
        new = pending & (rank > on_old[None, :]) & (rank <= (on_old + on_new)[None, :])
        self.ready_at = np.where(old, now + self.cold_old[None, :], self.ready_at)
        self.gpu_at = np.where(old, now, self.gpu_at)
        self.ready_at = np.where(new, now + self.cold_new[None, :], self.ready_at)
        self.gpu_at = np.where(new, now + NODE_PROVISION_SECONDS, self.gpu_at)
        placed = (~np.isnan(self.ready_at)).sum(axis=0) - (self.ready_at == PENDING).sum(axis=0)
        used = np.ceil(placed / self.per_node)
        excess = self.nodes > used
        since = np.where(
            excess, np.where(np.isnan(self.excess_since), now, self.excess_since), np.nan
        )
        done = excess & (now - since >= self.empty_seconds)
        self.nodes = np.where(done, used, self.nodes)
        self.excess_since = np.where(done, np.nan, since)
        self.pods = (~np.isnan(self.ready_at)).sum(axis=0).astype(np.float64)
        # Work left for later steps: pods waiting for a node, nodes waiting to go.
        self._busy = bool((self.ready_at == PENDING).any() or (~np.isnan(self.excess_since)).any())

    def _grant(self, need: Array) -> None:
        """Trim new nodes to each pool's limit, in unit order (Karpenter's `limits`)."""
        n_pools = len(self.pool_cap)
        weights = self.nodes + need
        totals = np.bincount(self.pool_idx, weights=weights, minlength=n_pools)
        if not (totals > self.pool_cap).any():
            return
        room = self.pool_cap - np.bincount(self.pool_idx, weights=self.nodes, minlength=n_pools)
        for i in np.nonzero(need)[0]:
            grant = min(need[i], max(room[self.pool_idx[i]], 0.0))
            room[self.pool_idx[i]] -= grant
            need[i] = grant
