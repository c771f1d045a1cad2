"""Model workloads: namespace, service account, vLLM Deployment and Service."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..render import Output, file_name

if TYPE_CHECKING:
    from ..plan import ClusterPlan, Placement

VLLM_PORT = 8000


def vllm_args(p: Placement) -> list[str]:
    """The vLLM OpenAI server's arguments, decided from the catalog."""
    m = p.model
    args = [
        "--model", "/models/weights",
        "--served-model-name", m.served_model_name,
        "--port", str(VLLM_PORT),
        "--tensor-parallel-size", str(m.tensor_parallel),
        "--max-model-len", str(m.max_model_len),
        "--dtype", m.dtype,
    ]
    if m.pipeline_parallel > 1:
        args += ["--pipeline-parallel-size", str(m.pipeline_parallel)]
    if m.quantization:
        args += ["--quantization", m.quantization]
    if m.task == "embed":
        args += ["--task", "embed"]
    return args + list(m.extra_args)


def context(cp: ClusterPlan, p: Placement) -> dict[str, Any]:
    m = p.model
    return {
        "name": m.name,
        "namespace": p.namespace,
        "labels": p.labels,
        "selector": p.selector_labels,
        "image": m.image,
        "args": vllm_args(p),
        "port": VLLM_PORT,
        "gpu_count": m.gpu_count,
        "cpu": _cpu(m.cpu),
        "memory": f"{int(m.memory_gib)}Gi",
        "node_selector": cp.provider.gpu_node_selector(cp.cluster, p.pool, p.gpu),
        "tolerations": cp.provider.gpu_tolerations(p.pool),
    }


def _cpu(cores: float) -> str:
    return str(int(cores)) if cores == int(cores) else f"{int(cores * 1000)}m"


def outputs(cp: ClusterPlan) -> Iterator[Output]:
    for p in cp.placements:
        ctx = context(cp, p)
        folder = f"models/{p.name}"
        for kind, template in (
            ("Namespace", "models/namespace.yaml.j2"),
            ("ServiceAccount", "models/serviceaccount.yaml.j2"),
            ("Deployment", "models/deployment.yaml.j2"),
            ("Service", "models/service.yaml.j2"),
        ):
            name = p.namespace if kind == "Namespace" else p.name
            yield Output(f"{folder}/{file_name(kind, name)}", template, ctx, p.input_hash)
