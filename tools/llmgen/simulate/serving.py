"""What one vLLM replica can serve: a roofline model from size, dtype and GPU.

The formula (docs/simulate.md explains it and where it is wrong):

- weights read per decode step: W = parametersB x 1e9 x bytes per parameter
  (quantisation wins over dtype, as `catalog/cost.py` decides);
- KV cache read per sequence per step: ctx x kv, with ctx = prompt + output/2
  tokens and kv = 128 KiB x (parametersB / 8) ^ 0.45 per token (fits
  Llama-3 8B/70B and Qwen2.5-32B, which use grouped-query attention; halved
  with `--kv-cache-dtype fp8`);
- decode is memory-bound: a step over b sequences takes
  t(b) = max((W + b x ctx x kv) / B, b x 2P / F), with B = 0.7 x gpuCount x
  the GPU's memory bandwidth and F = 0.5 x gpuCount x its dense bf16 FLOP/s;
- prefill is compute-bound: p = prompt x 2P / F seconds per request;
- a replica never completes more than F / (2P x (prompt + output)) requests/s;
- concurrency per replica: c_max = min(--max-num-seqs, KV capacity / (prompt +
  output) / kv), with KV capacity = 0.9 x GPU memory - W - 1 GiB per GPU;
- each request holds a slot for S(c) = p + output x t(c); at an arrival rate a
  per replica the running count solves c = a x S(c) (Little's law; closed form
  per roofline branch). Beyond c_max the replica is saturated: it completes
  c_max / S(c_max) requests/s and the rest waits in vLLM's queue.
- time to first token: base p + t(c) plus an exponential tail whose mean is
  p x rho / (1 - rho) (an M/M/1 wait for the prefill slot at utilisation rho)
  plus the backlog's wait (queue / completion rate); p95 = base + 3.0 x mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]

GIB = float(2**30)
MEMORY_EFFICIENCY = 0.7
COMPUTE_EFFICIENCY = 0.5
GPU_MEMORY_UTILIZATION = 0.9  # vLLM's --gpu-memory-utilization default
RESERVED_GIB_PER_GPU = 1.0  # activations, CUDA graphs
KV_BYTES_8B = 128 * 1024.0  # Llama-3-8B: 2 x 32 layers x 8 KV heads x 128 dims x 2 bytes
KV_EXPONENT = 0.45

#: GPU key prefix -> (memory bandwidth GB/s, dense bf16 TFLOP/s), from the vendors' data sheets
GPU_SPECS: dict[str, tuple[float, float]] = {
    "H200": (4800.0, 989.0),
    "H100": (3350.0, 989.0),
    "A100-80": (2039.0, 312.0),
    "A100": (1555.0, 312.0),
    "L40S": (864.0, 362.0),
    "L4": (300.0, 121.0),
    "A10G": (600.0, 70.0),
    "A10": (600.0, 125.0),
    "T4": (320.0, 65.0),
}


def gpu_spec(key: str) -> tuple[float, float] | None:
    """The data-sheet figures for a GpuCatalog key (`H100-80GB` -> H100), or None."""
    upper = key.upper()
    for prefix in sorted(GPU_SPECS, key=len, reverse=True):
        if upper.startswith(prefix):
            return GPU_SPECS[prefix]
    return None


@dataclass(frozen=True)
class Replica:
    """Per-replica constants of one unit (all arrays, one element per unit)."""

    weights: Array  # bytes read per decode step
    kv_token: Array  # KV-cache bytes per token
    bandwidth: Array  # effective bytes/s
    flops: Array  # effective FLOP/s
    params: Array  # parameters
    max_seqs: Array
    kv_capacity: Array  # bytes
    prompt: Array  # tokens per request
    output: Array  # tokens per request (0 for embeddings)

    @cached_property
    def ctx(self) -> Array:
        return self.prompt + self.output / 2.0

    @cached_property
    def prefill(self) -> Array:
        return self.prompt * 2.0 * self.params / self.flops

    def step_time(self, b: Array) -> Array:
        mem = (self.weights + b * self.ctx * self.kv_token) / self.bandwidth
        return np.maximum(mem, b * 2.0 * self.params / self.flops)

    @cached_property
    def c_max(self) -> Array:
        per_seq = np.maximum((self.prompt + self.output) * self.kv_token, 1.0)
        return np.maximum(np.minimum(self.max_seqs, np.floor(self.kv_capacity / per_seq)), 1.0)

    def service_time(self, c: Array) -> Array:
        return self.prefill + self.output * self.step_time(c)

    def capacity(self) -> Array:
        """Requests/s one saturated replica completes: the slots' turnover, and
        never more than its FLOP/s allow (every token costs 2P FLOPs)."""
        return self._capacity

    @cached_property
    def _capacity(self) -> Array:
        c = self.c_max
        compute = self.flops / (2.0 * self.params * np.maximum(self.prompt + self.output, 1.0))
        return np.minimum(c / self.service_time(c), compute)

    def running(self, rate: Array) -> Array:
        """Requests in flight per replica at `rate` requests/s (unsaturated), Little's law."""
        mem0 = self.prefill + self.output * self.weights / self.bandwidth
        mem1 = self.output * self.ctx * self.kv_token / self.bandwidth
        cmp1 = self.output * 2.0 * self.params / self.flops
        with np.errstate(divide="ignore", invalid="ignore"):
            c_mem = np.where(rate * mem1 < 1.0, rate * mem0 / (1.0 - rate * mem1), np.inf)
            c_cmp = np.where(rate * cmp1 < 1.0, rate * self.prefill / (1.0 - rate * cmp1), np.inf)
        return np.maximum(c_mem, c_cmp)


def kv_bytes_per_token(parameters_b: float, fp8_cache: bool) -> float:
    per = KV_BYTES_8B * float(max(parameters_b, 0.1) / 8.0) ** KV_EXPONENT
    return float(per / 2.0 if fp8_cache else per)


@dataclass(frozen=True)
class Served:
    """One tick of serving for every unit."""

    completed: Array  # requests/s completed
    queue: Array  # requests waiting at the end of the tick
    running: Array  # per replica
    ttft_base: Array
    ttft_mean: Array
    e2e_base: Array
    e2e_mean: Array
    qwait_mean: Array
    kv: Array  # per replica, 0..1
    duty: Array  # per replica, percent


def serve(r: Replica, arrivals: Array, ready: Array, backlog: Array, dt: float) -> Served:
    """Serve `arrivals` (requests/s over `dt` seconds) plus `backlog` on `ready` replicas."""
    n = np.maximum(ready, 1.0)
    cap = r.capacity() * n
    demand = arrivals + backlog / dt
    completed = np.where(ready > 0, np.minimum(demand, cap), 0.0)
    queue = np.where(ready > 0, (demand - completed) * dt, 0.0)
    saturated = demand >= cap
    running = np.where(saturated, r.c_max, np.minimum(r.running(completed / n), r.c_max))
    running = np.where(ready > 0, running, 0.0)
    rho = np.minimum(np.where(cap > 0, completed / cap, 0.0), 0.99)
    step = r.step_time(np.maximum(running, 1.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        backlog_wait = np.where(completed > 0, queue / completed, 0.0)
    tail = r.prefill * rho / (1.0 - rho)
    ttft_base = r.prefill + step + backlog_wait
    decode = r.output * step
    kv = np.minimum(running * r.ctx * r.kv_token / np.maximum(r.kv_capacity, 1.0), 1.0)
    duty = 100.0 * (1.0 - np.exp(-running))
    return Served(
        completed=completed,
        queue=queue,
        running=running,
        ttft_base=ttft_base,
        ttft_mean=tail,
        e2e_base=ttft_base + decode,
        e2e_mean=tail,
        qwait_mean=tail,
        kv=kv,
        duty=duty,
    )


P95_TAIL = float(-np.log(0.05))


def p95(base: Array, mean: Array) -> Array:
    return base + mean * P95_TAIL
