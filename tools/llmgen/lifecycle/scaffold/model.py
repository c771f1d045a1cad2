"""The text of a new Model file (`llmgen model new`, `llmgen init`).

Defaults, and why:

- engine: vLLM's OpenAI server image, tensorParallel = gpuCount (one model
  replica spans its GPUs), dtype bfloat16 (what current open models ship in),
  maxModelLen 8192 (bounded KV cache; raise it deliberately).
- image: the image most of the catalog's models already use, so a new model
  inherits the team's pinned vLLM build; vLLM's release tag otherwise.
- weights: mirrored per cloud at `<s3|gs>://<bucket>/<hf repo>/<revision>/`,
  the convention the shipped catalog follows; the bucket of each cloud is the
  one most existing models use unless given. Only clouds that have clusters
  in the catalog get a URI (both when there are no clusters yet).
- resources: 4 vCPU per GPU; host memory 1.2 × the weights (vLLM stages
  safetensors through page cache), at least 16 GiB.
- nodes (`--nodes N`, docs/multinode.md): a replica spans N nodes, one pod
  each with gpuCount / N GPUs; tensorParallel = gpuCount / N within a node,
  pipelineParallel = N across them (vLLM's guidance, the rule validate
  applies); cpu and memory are then per pod, memory 1.2 × that pod's share
  of the weights (each pipeline stage loads its own layers).
- scaling 1..2 replicas on queue length, GPU utilisation and KV-cache use;
  serving name is the repo's model name in lower case, route /v1/<name>.
- owner: placeholders that say so, to be filled in review.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from llmgen.catalog.load import Document
from llmgen.errors import UsageError
from llmgen.lifecycle.edit import render_new

DEFAULT_IMAGE = "vllm/vllm-openai:v0.11.0"
SCHEMES = {"aws": "s3", "gcp": "gs"}
_BYTES = {"float32": 4.0, "float16": 2.0, "bfloat16": 2.0, "auto": 2.0}
_QUANT_BYTES = {"fp8": 1.0, "int8": 1.0, "w8a8": 1.0}  # other schemes: 4-bit
_SIZE = re.compile(r"(?<![0-9a-z.])(\d+(?:\.\d+)?)b(?![a-z0-9])", re.IGNORECASE)


@dataclass(frozen=True)
class ModelSpec:
    """What `llmgen model new` was told; None means "use the default"."""

    name: str
    repo: str
    revision: str
    gpu: str
    gpu_count: int = 1
    params_b: float | None = None
    task: str = "generate"
    image: str | None = None
    dtype: str = "bfloat16"
    quantization: str | None = None
    max_model_len: int = 8192
    min_replicas: int = 1
    max_replicas: int = 2
    weights_bucket: str | None = None  # same bucket name on every cloud
    weights_sha256: str | None = None
    team: str | None = None
    cost_center: str | None = None
    description: str | None = None
    nodes: int = 1  # >1: a multi-node replica (LeaderWorkerSet group), gpu_count across them


def guess_params_b(repo: str) -> float | None:
    """Parameters in billions from a repo name such as Llama-3.1-8B-Instruct.

    None when the name does not say, or says it ambiguously (mixtures of
    experts such as 8x7B).
    """
    tail = repo.rsplit("/", 1)[-1]
    if re.search(r"\d+x\d+(?:\.\d+)?b", tail, re.IGNORECASE):
        return None
    sizes = _SIZE.findall(tail)
    return float(sizes[-1]) if len(sizes) == 1 else None


def _most_common(values: Iterable[str]) -> str | None:
    counts = Counter(v for v in values if v)
    return min(counts, key=lambda v: (-counts[v], v)) if counts else None


def _spec(doc: Document) -> dict[str, Any]:
    spec = doc.data.get("spec")
    return spec if isinstance(spec, dict) else {}


def _buckets(docs: Sequence[Document]) -> dict[str, str]:
    """Per cloud, the weights bucket most existing models use."""
    found: dict[str, list[str]] = {cloud: [] for cloud in SCHEMES}
    for doc in docs:
        if doc.kind != "Model":
            continue
        uris = (_spec(doc).get("weights") or {}).get("uris") or {}
        for cloud, scheme in SCHEMES.items():
            uri = uris.get(cloud)
            if isinstance(uri, str) and uri.startswith(f"{scheme}://"):
                found[cloud].append(uri[len(scheme) + 3 :].split("/", 1)[0])
    return {c: b for c, v in found.items() if (b := _most_common(v)) is not None}


def _clouds(docs: Sequence[Document]) -> list[str]:
    used = {_spec(d).get("cloud") for d in docs if d.kind == "Cluster"}
    return [c for c in SCHEMES if c in used] or list(SCHEMES)


def _flow(items: Sequence[Any]) -> CommentedSeq:
    seq = CommentedSeq(items)
    seq.fa.set_flow_style()
    return seq


def _number(x: float) -> int | float:
    return int(x) if float(x).is_integer() else x


def _per_node(spec: ModelSpec) -> int:
    """GPUs per pod of a replica; refuses a split validate would refuse."""
    if spec.nodes < 1:
        raise UsageError(f"--nodes must be 1 or more, got {spec.nodes}")
    if spec.nodes == 1:
        return spec.gpu_count
    if spec.gpu_count % spec.nodes:
        raise UsageError(
            f"--gpu-count {spec.gpu_count} does not divide into --nodes {spec.nodes}: every "
            "pod of a multi-node replica requests the same number of GPUs (--gpu-count is "
            "the whole replica's, e.g. --gpu-count 16 --nodes 2 for two 8-GPU nodes)"
        )
    if spec.task != "generate":
        raise UsageError(
            "--nodes applies to generation models only (vLLM's pipeline parallelism does "
            f"not run the pooling runner a --task {spec.task} model needs)"
        )
    return spec.gpu_count // spec.nodes


def model_document(spec: ModelSpec, docs: Sequence[Document]) -> CommentedMap:
    """The Model document for `spec`, defaults filled from the catalog `docs`."""
    per_node = _per_node(spec)
    params = spec.params_b if spec.params_b is not None else guess_params_b(spec.repo)
    if params is None:
        raise UsageError(
            f"cannot tell the size of {spec.repo!r} from its name; pass --params-b "
            "(parameters in billions, e.g. 46.7 for Mixtral-8x7B)"
        )
    image = spec.image or _most_common(
        str((_spec(d).get("engine") or {}).get("image", "")) for d in docs if d.kind == "Model"
    )
    known = _buckets(docs)
    uris = CommentedMap()
    for cloud in _clouds(docs):
        bucket = spec.weights_bucket or known.get(cloud)
        if bucket is None:
            raise UsageError(
                f"no {cloud} weights bucket to follow in the catalog; pass --weights-bucket NAME "
                f"(weights are read from {SCHEMES[cloud]}://NAME/<repo>/<revision>/)"
            )
        uris[cloud] = f"{SCHEMES[cloud]}://{bucket}/{spec.repo}/{spec.revision}/"
    if spec.quantization:
        bytes_per = _QUANT_BYTES.get(spec.quantization, 0.5)
    else:
        bytes_per = _BYTES.get(spec.dtype, 2.0)
    weights_gib = params * 1e9 * bytes_per / 2**30
    embed = spec.task == "embed"

    engine = CommentedMap(image=image or DEFAULT_IMAGE, tensorParallel=per_node)
    if spec.nodes > 1:
        engine["pipelineParallel"] = spec.nodes
    engine["maxModelLen"] = spec.max_model_len
    engine["dtype"] = spec.dtype
    if spec.quantization:
        engine["quantization"] = spec.quantization
    targets = CommentedMap(queueLength=32 if embed else 8)
    if not embed:
        targets["kvCacheUsage"] = 0.85
    served = spec.repo.rsplit("/", 1)[-1].lower()
    weights = CommentedMap(uris=uris)
    if spec.weights_sha256:
        weights["sha256"] = spec.weights_sha256

    body = CommentedMap()
    if embed:
        body["task"] = "embed"
    body["source"] = CommentedMap(repo=spec.repo, revision=spec.revision)
    body["parametersB"] = _number(params)
    body["weights"] = weights
    body["engine"] = engine
    resources = CommentedMap(gpu=spec.gpu, gpuCount=spec.gpu_count)
    if spec.nodes > 1:
        resources["nodes"] = spec.nodes
        resources.yaml_add_eol_comment(
            f"# per node: {per_node} GPUs, cpu and memory below", "nodes"
        )
    resources["cpu"] = 4 * per_node
    resources["memoryGiB"] = max(16, math.ceil(weights_gib * 1.2 / spec.nodes))
    body["resources"] = resources
    body["scaling"] = CommentedMap(
        minReplicas=spec.min_replicas,
        maxReplicas=spec.max_replicas,
        targets=targets,
        scaleToZero=False,
        cooldownSeconds=300,
    )
    body["serving"] = CommentedMap(servedModelName=served, routePrefix=f"/v1/{spec.name}")
    owner = CommentedMap(team=spec.team or "unowned", costCenter=spec.cost_center or "unassigned")
    if spec.team is None:
        owner.yaml_add_eol_comment("# TODO: the team that owns this model", "team")
    if spec.cost_center is None:
        owner.yaml_add_eol_comment("# TODO: the cost center its GPUs are billed to", "costCenter")
    body["owner"] = owner

    doc = CommentedMap(apiVersion="llmgen.io/v1alpha1", kind="Model")
    doc["metadata"] = CommentedMap(name=spec.name)
    doc["spec"] = body
    return doc


def model_file(spec: ModelSpec, docs: Sequence[Document]) -> str:
    """The full text of `catalog/models/<name>.yaml`, with the editor modeline."""
    note = spec.description or (
        f"{spec.repo} at {spec.revision}; written by 'llmgen model new', review the defaults."
    )
    header = ["yaml-language-server: $schema=../../schemas/model.schema.json"]
    header += textwrap.wrap(note, width=76, break_long_words=False, break_on_hyphens=False)
    return render_new(model_document(spec, docs), header)
