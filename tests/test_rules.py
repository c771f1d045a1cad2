# Expected diagnostics are exact, one per line, and long: splitting them would
# only make them harder to compare with llmgen's output.
# ruff: noqa: E501
"""Cross-document rules: each one on a small mutation of the shipped catalog.

Every case edits the shipped catalog in a scratch copy and asserts the exact
new diagnostics (file:line:col: path: message). Warnings are compared only
where the case is about one, because cost changes shift the shipped budget
warning. The cost arithmetic and suggestions are tested as plain functions.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from llmgen.catalog import cost
from llmgen.catalog.hints import suggest
from llmgen.catalog.validate import ValidationResult
from llmgen.plan.check import validate_with_plan

REPO = Path(__file__).resolve().parents[1]
_BASELINE: frozenset[str] | None = None

Edit = tuple[str, str, str]  # file, exact old text (once), new text


def _baseline() -> frozenset[str]:
    global _BASELINE
    if _BASELINE is None:
        _BASELINE = frozenset(str(d) for d in validate(REPO).diagnostics)
    return _BASELINE


def validate(root: Path) -> ValidationResult:
    """Catalog validation and the plan's checks, as `llmgen validate` runs them."""
    return validate_with_plan(root)[0]


def apply(root: Path, edits: list[Edit]) -> ValidationResult:
    for rel, old, new in edits:
        path = root / rel
        text = path.read_text()
        assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {rel}"
        path.write_text(text.replace(old, new))
    return validate(root)


def new_problems(result: ValidationResult, *, warnings: bool) -> list[str]:
    return [
        str(d) for d in result.diagnostics if str(d) not in _baseline() and (d.is_error or warnings)
    ]


# These cases are about a warning, so warnings are compared too.
WARNING_CASES = {"budget-warning", "gpu-utilization-target"}

CASES = [
    pytest.param(
        [("catalog/environments/dev.yaml", "clusters: [dev-aws-use2]", "clusters: [dev-aws-usw2]")],
        [
            "catalog/environments/dev.yaml:8:14: spec.clusters[0]: unknown cluster 'dev-aws-usw2'; did you mean 'dev-aws-use2'?"
        ],
        id="unknown-cluster",
    ),
    pytest.param(
        [
            (
                "catalog/environments/dev.yaml",
                "clusters: [dev-aws-use2]",
                "clusters: [dev-aws-use2, staging-aws-use1]",
            )
        ],
        [
            "catalog/environments/dev.yaml:31:7: spec.models[1]: cluster 'staging-aws-use1' has no node pool with 2 × L4 on one node for model 'qwen2-5-32b-instruct-awq' (its pools: l4-x1 (1 × L4), a100-x8 (8 × A100-80GB))",
            "catalog/environments/staging.yaml:8:14: spec.clusters[0]: cluster 'staging-aws-use1' is already in environment 'dev'; a cluster belongs to one environment",
        ],
        id="cluster-two-envs",
    ),
    pytest.param(
        [("catalog/environments/dev.yaml", "    - name: bge-m3", "    - name: bge-m4")],
        [
            "catalog/environments/dev.yaml:33:13: spec.models[2].name: unknown model 'bge-m4'; did you mean 'bge-m3'?"
        ],
        id="unknown-model",
    ),
    pytest.param(
        [
            (
                "catalog/environments/dev.yaml",
                "    - name: bge-m3",
                "    - name: llama-3-1-8b-instruct",
            )
        ],
        [
            "catalog/environments/dev.yaml:33:13: spec.models[2].name: model 'llama-3-1-8b-instruct' is listed twice (first at models[0])"
        ],
        id="model-twice",
    ),
    pytest.param(
        [
            (
                "catalog/environments/prod.yaml",
                "clusters: [prod-aws-use1, prod-gcp-usc1]",
                "clusters: [prod-aws-use1, staging-gcp-usc1]",
            )
        ],
        [
            "catalog/environments/prod.yaml:51:33: spec.models[2].clusters[1]: cluster 'staging-gcp-usc1' is not in environment 'prod' (its clusters: prod-aws-use1, prod-aws-usw2, prod-gcp-usc1, prod-gcp-euw4); did you mean 'prod-gcp-usc1'?"
        ],
        id="model-cluster-outside",
    ),
    pytest.param(
        [
            (
                "catalog/environments/dev.yaml",
                "  requirePinned: false",
                "  requirePinned: false\n  suspendedClusters: [dev-aws-use1]",
            )
        ],
        [
            "catalog/environments/dev.yaml:11:23: spec.suspendedClusters[0]: unknown cluster 'dev-aws-use1'; did you mean 'dev-aws-use2'?"
        ],
        id="suspended-outside",
    ),
    pytest.param(
        [("catalog/environments/staging.yaml", "staging-gcp-usc1: 50", "staging-gcp-usc1: 40")],
        [
            "catalog/environments/staging.yaml:39:7: spec.routing.weights: weights sum to 50 + 40 = 90, not 100 (policy is weighted)"
        ],
        id="weights-sum",
    ),
    pytest.param(
        [("catalog/environments/staging.yaml", "staging-gcp-usc1: 50", "staging-gcp-usc2: 50")],
        [
            "catalog/environments/staging.yaml:40:7: spec.routing.weights.staging-gcp-usc2: unknown cluster 'staging-gcp-usc2'; did you mean 'staging-gcp-usc1'?"
        ],
        id="weights-key",
    ),
    pytest.param(
        [("catalog/environments/dev.yaml", "policy: failover", "policy: weighted")],
        [
            "catalog/environments/dev.yaml:27:13: spec.routing.policy: policy 'weighted' needs routing.weights (percent per cluster)"
        ],
        id="weighted-no-weights",
    ),
    pytest.param(
        [
            ("catalog/clusters/dev-aws-use2.yaml", "gpu: A10G", "gpu: A10"),
            ("catalog/models/llama-3-3-70b-instruct.yaml", "gpu: H100-80GB", "gpu: H100"),
        ],
        [
            "catalog/clusters/dev-aws-use2.yaml:32:12: spec.nodePools[2].gpu: unknown GPU 'A10'; did you mean 'A10G'?",
            "catalog/models/llama-3-3-70b-instruct.yaml:24:10: spec.resources.gpu: unknown GPU 'H100'; did you mean 'H100-80GB'?",
        ],
        id="unknown-gpu",
    ),
    pytest.param(
        [("catalog/clusters/staging-gcp-usc1.yaml", "gpu: L4", "gpu: A10G")],
        [
            "catalog/clusters/staging-gcp-usc1.yaml:19:12: spec.nodePools[0].gpu: GPU 'A10G' is not offered on gcp in the GpuCatalog (gcp offers: A100-80GB, H100-80GB, H200, L4)",
            "catalog/environments/staging.yaml:42:7: spec.models[0]: cluster 'staging-gcp-usc1' has no node pool with 1 × L4 on one node for model 'llama-3-1-8b-instruct' (its pools: l4-x1 (1 × A10G), a100-x2 (2 × A100-80GB))",
            "catalog/environments/staging.yaml:49:7: spec.models[2]: cluster 'staging-gcp-usc1' has no node pool with 1 × L4 on one node for model 'bge-m3' (its pools: l4-x1 (1 × A10G), a100-x2 (2 × A100-80GB))",
        ],
        id="gpu-not-on-cloud",
    ),
    pytest.param(
        [
            (
                "catalog/clusters/dev-aws-use2.yaml",
                "instanceTypes: [g6.2xlarge]",
                "instanceTypes: [g6.2xlarge, g5.2xlarge]",
            )
        ],
        [
            "catalog/clusters/dev-aws-use2.yaml:18:35: spec.nodePools[0].instanceTypes[1]: instance type 'g5.2xlarge' is not listed for GPU 'L4' on aws (listed: g6.xlarge, g6.2xlarge, g6.4xlarge, g6.12xlarge, g6.48xlarge); did you mean 'g6.2xlarge'?"
        ],
        id="instance-not-listed",
    ),
    pytest.param(
        # GPU duty cycle reads ~100 % with one stream: it no longer drives scaling.
        [
            (
                "catalog/models/bge-m3.yaml",
                "queueLength: 32\n",
                "queueLength: 32\n      gpuUtilization: 80\n",
            )
        ],
        [
            "catalog/models/bge-m3.yaml:33:23: warning: spec.scaling.targets.gpuUtilization: GPU duty cycle no longer drives scaling: it reads ~100 % while a replica decodes a single stream, so replicas would ratchet to the maximum; scaling follows queueLength, running requests against --max-num-seqs, kvCacheUsage and p95LatencySeconds (remove this target)"
        ],
        id="gpu-utilization-target",
    ),
    pytest.param(
        # vLLM has no `--quantization int4` (catalog/engines.py): it would crash-loop at start.
        [
            (
                "catalog/models/qwen2-5-32b-instruct-awq.yaml",
                "quantization: awq",
                "quantization: int4",
            )
        ],
        [
            "catalog/models/qwen2-5-32b-instruct-awq.yaml:22:19: spec.engine.quantization: vLLM 0.11 does not accept --quantization int4; use awq or gptq (the checkpoint's own 4-bit method)"
        ],
        id="engine-quantization",
    ),
    pytest.param(
        # The review's defect 3: 28 GiB + 2 GiB /dev/shm on a 32 GiB L4 node.
        [("catalog/models/llama-3-1-8b-instruct.yaml", "memoryGiB: 20", "memoryGiB: 28")],
        [
            "catalog/models/llama-3-1-8b-instruct.yaml:27:16: spec.resources.memoryGiB: does not fit a node in cluster 'staging-aws-use1': a replica requests 6.1 CPU and 30.1 GiB (vLLM 6 CPU, 30Gi with /dev/shm, plus the Istio sidecar) but pool 'l4-x1' offers only g6.2xlarge (8 vCPU, 32 GiB): 28.3 GiB memory allocatable",
            "catalog/models/llama-3-1-8b-instruct.yaml:27:16: spec.resources.memoryGiB: does not fit a node in cluster 'staging-gcp-usc1': a replica requests 6.1 CPU and 30.1 GiB (vLLM 6 CPU, 30Gi with /dev/shm, plus the Istio sidecar) but pool 'l4-x1' offers only g2-standard-8 (8 vCPU, 32 GiB): 27.5 GiB memory allocatable",
        ],
        id="node-fit",
    ),
    pytest.param(
        [
            (
                "catalog/clusters/staging-gcp-usc1.yaml",
                "machineType: g2-standard-8",
                "machineType: g2-standard-4",
            )
        ],
        [
            "catalog/clusters/staging-gcp-usc1.yaml:21:20: spec.nodePools[0].machineType: machine type 'g2-standard-4' is not listed for GPU 'L4' on gcp (listed: g2-standard-8, g2-standard-48, g2-standard-96); did you mean 'g2-standard-48'?"
        ],
        id="machine-not-listed",
    ),
    pytest.param(
        [
            (
                "catalog/clusters/dev-aws-use2.yaml",
                "instanceTypes: [g6.12xlarge]",
                "instanceTypes: [g6.12xlarge, g6.xlarge]",
            )
        ],
        [
            "catalog/clusters/dev-aws-use2.yaml:26:36: spec.nodePools[1].instanceTypes[1]: instance type 'g6.xlarge' has 1 GPU(s) per node, but the pool says gpusPerNode: 4"
        ],
        id="instance-gpus-mismatch",
    ),
    pytest.param(
        [("catalog/clusters/dev-aws-use2.yaml", "name: a10g-x4", "name: l4-x1")],
        [
            "catalog/clusters/dev-aws-use2.yaml:31:13: spec.nodePools[2].name: node pool 'l4-x1' is defined twice in this cluster (first at nodePools[0])"
        ],
        id="pool-twice",
    ),
    pytest.param(
        [
            (
                "catalog/clusters/dev-aws-use2.yaml",
                "      minNodes: 0\n      maxNodes: 2",
                "      minNodes: 3\n      maxNodes: 2",
            )
        ],
        [
            "catalog/clusters/dev-aws-use2.yaml:36:17: spec.nodePools[2].minNodes: minNodes 3 is greater than maxNodes 2"
        ],
        id="min-nodes",
    ),
    pytest.param(
        [
            (
                "catalog/models/llama-3-3-70b-instruct.yaml",
                "tensorParallel: 4",
                "tensorParallel: 2\n    pipelineParallel: 4",
            )
        ],
        [
            "catalog/models/llama-3-3-70b-instruct.yaml:26:15: spec.resources.gpuCount: gpuCount is 4 but engine.tensorParallel × engine.pipelineParallel = 2 × 4 = 8"
        ],
        id="parallelism",
    ),
    pytest.param(
        [("catalog/models/llama-3-3-70b-instruct.yaml", "parametersB: 70.6", "parametersB: 170")],
        [
            "catalog/models/llama-3-3-70b-instruct.yaml:25:15: spec.resources.gpuCount: weights do not fit: 170B parameters × 2 bytes (bfloat16) × 1.2 = 408.0 GiB > 4 × 80 GiB (H100-80GB) = 320 GiB"
        ],
        id="weights-fit",
    ),
    pytest.param(
        [("catalog/models/qwen2-5-32b-instruct-awq.yaml", "    quantization: awq\n", "")],
        [
            "catalog/models/qwen2-5-32b-instruct-awq.yaml:24:15: spec.resources.gpuCount: weights do not fit: 32.8B parameters × 2 bytes (float16) × 1.2 = 78.7 GiB > 2 × 24 GiB (L4) = 48 GiB"
        ],
        id="weights-fit-quant",
    ),
    pytest.param(
        [
            (
                "catalog/environments/dev.yaml",
                "    - name: bge-m3",
                "    - name: llama-3-3-70b-instruct\n      replicas: {min: 0, max: 1}\n    - name: bge-m3",
            )
        ],
        [
            "catalog/environments/dev.yaml:33:7: spec.models[2]: cluster 'dev-aws-use2' has no node pool with 4 × H100-80GB on one node for model 'llama-3-3-70b-instruct' (its pools: l4-x1 (1 × L4), l4-x4 (4 × L4), a10g-x4 (4 × A10G))"
        ],
        id="no-pool",
    ),
    pytest.param(
        [("catalog/models/mixtral-8x7b-instruct.yaml", "minReplicas: 1", "minReplicas: 5")],
        [
            "catalog/models/mixtral-8x7b-instruct.yaml:29:18: spec.scaling.minReplicas: minReplicas 5 is greater than maxReplicas 3"
        ],
        id="model-min-max",
    ),
    pytest.param(
        [
            (
                "catalog/environments/dev.yaml",
                "replicas: {min: 1, max: 2}",
                "replicas: {min: 3, max: 2}",
            )
        ],
        [
            "catalog/environments/dev.yaml:30:23: spec.models[0].replicas.min: replicas.min 3 is greater than replicas.max 2"
        ],
        id="env-min-max",
    ),
    pytest.param(
        [
            (
                "catalog/environments/dev.yaml",
                "replicas: {min: 0, max: 1}\n    - name: bge-m3",
                "replicas: {min: 5}\n    - name: bge-m3",
            )
        ],
        [
            "catalog/environments/dev.yaml:32:23: spec.models[1].replicas.min: replicas.min 5 is greater than the model's maxReplicas 4"
        ],
        id="env-min-model-max",
    ),
    pytest.param(
        [("catalog/environments/dev.yaml", "monthlyUSD: 5000", "monthlyUSD: 100")],
        [
            "catalog/environments/dev.yaml:12:17: spec.budget.monthlyUSD: minimum replicas cost $624/month, over the budget of $100/month (largest: bge-m3 1 × $0.43/h × 730 h = $312, llama-3-1-8b-instruct 1 × $0.43/h × 730 h = $312)"
        ],
        id="budget-error",
    ),
    pytest.param(
        [("catalog/environments/dev.yaml", "monthlyUSD: 5000", "monthlyUSD: 1400")],
        [
            "catalog/environments/dev.yaml:12:17: warning: spec.budget.monthlyUSD: maximum replicas cost $1,671/month, over the budget of $1,400/month; llmgen caps maxReplicas to llama-3-1-8b-instruct 2→1 ($1,359/month)",
            "catalog/environments/dev.yaml:30:31: warning: spec.models[0].replicas.max: maximum replicas of 'llama-3-1-8b-instruct' capped 2→1 by the budget of $1,400/month ($1,671/month at every maximum)",
        ],
        id="budget-warning",
    ),
    pytest.param(
        [
            (
                "catalog/environments/staging.yaml",
                "replicas: {min: 4, max: 6}",
                "replicas: {min: 2, max: 2}",
            )
        ],
        [
            "catalog/environments/staging.yaml:47:9: spec.models[1].canary: the canary of 'mixtral-8x7b-instruct' needs a replica beside the stable one on every cluster, but its maximum on staging-aws-use1, staging-gcp-usc1 is 1; raise replicas.max to at least 4"
        ],
        id="canary-without-room",
    ),
    pytest.param(
        [("catalog/environments/dev.yaml", "monthlyUSD: 5000", "monthlyUSD: 1000")],
        [
            "catalog/environments/dev.yaml:32:31: spec.models[1].replicas.max: the budget of $1,000/month leaves 'qwen2-5-32b-instruct-awq' no replica (maximum 1 capped to 0): raise budget.monthlyUSD or remove the model from the environment"
        ],
        id="budget-caps-to-zero",
    ),
    pytest.param(
        [
            (
                "catalog/models/llama-3-1-8b-instruct.yaml",
                "revision: 0e9e39f249a16976918f6564b8830bc894c89659",
                "revision: main",
            )
        ],
        [
            "catalog/models/llama-3-1-8b-instruct.yaml:10:15: spec.source.revision: revision 'main' is not a 40-hex commit; environment 'prod' requires pinned revisions"
        ],
        id="pinned-revision",
    ),
    pytest.param(
        [
            (
                "catalog/models/bge-m3.yaml",
                "image: vllm/vllm-openai:v0.11.0@sha256:2c7f6d1e0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d",
                "image: vllm/vllm-openai:v0.11.0",
            )
        ],
        [
            "catalog/models/bge-m3.yaml:19:12: spec.engine.image: image 'vllm/vllm-openai:v0.11.0' has no @sha256:<64 hex> digest; environment 'prod' requires pinned images"
        ],
        id="pinned-image",
    ),
    pytest.param(
        [
            (
                "catalog/environments/prod.yaml",
                "      replicas: {min: 2, max: 4}\n",
                "      replicas: {min: 2, max: 4}\n      canary: {revision: v0.2, image: 'vllm/vllm-openai:v0.12.0'}\n",
            )
        ],
        [
            "catalog/environments/prod.yaml:51:15: spec.models[2].canary.weightsSha256: canary revision 'v0.2' loads other weights than the model's; this environment requires pinned weights: add the SHA-256 of that revision's manifest",
            "catalog/environments/prod.yaml:51:26: spec.models[2].canary.revision: canary revision 'v0.2' is not a 40-hex commit; this environment requires pinned revisions",
            "catalog/environments/prod.yaml:51:39: spec.models[2].canary.image: canary image 'vllm/vllm-openai:v0.12.0' has no @sha256:<64 hex> digest; this environment requires pinned images",
        ],
        id="pinned-canary",
    ),
    pytest.param(
        [
            (
                "catalog/environments/dev.yaml",
                "    - name: bge-m3\n      replicas: {min: 1, max: 1}",
                "    - name: bge-m3\n      replicas: {min: 1, max: 2}\n      canary: {revision: main}",
            )
        ],
        [],
        id="unpinned-ok-in-dev",
    ),
    pytest.param(
        [
            (
                "catalog/models/mixtral-8x7b-instruct.yaml",
                "      gcp: gs://example-llm-weights/mistralai/Mixtral-8x7B-Instruct-v0.1/41bd4c9e7e4fb318ca40e721131d4933966c2cc1/\n",
                "",
            )
        ],
        [
            "catalog/models/mixtral-8x7b-instruct.yaml:14:7: spec.weights.uris.gcp: no gcp mirror; environment 'prod' runs this model on prod-gcp-usc1 and requires pinned weights (loaded from the cloud-local mirror, not the hub)"
        ],
        id="pinned-mirror",
    ),
    pytest.param(
        [
            (
                "catalog/models/bge-m3.yaml",
                "    sha256: 3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b\n",
                "",
            )
        ],
        [
            "catalog/models/bge-m3.yaml:14:5: spec.weights.sha256: no manifest hash; environment 'prod' requires pinned weights (SHA-256 of the mirror's manifest, checked before vLLM starts)"
        ],
        id="pinned-weights-sha256",
    ),
    pytest.param(
        [
            (
                "catalog/models/mixtral-8x7b-instruct.yaml",
                "      gcp: gs://example-llm-weights/mistralai/Mixtral-8x7B-Instruct-v0.1/41bd4c9e7e4fb318ca40e721131d4933966c2cc1/\n",
                "",
            ),
            ("catalog/environments/prod.yaml", "requirePinned: true", "requirePinned: false"),
        ],
        [],
        id="unpinned-mirror-ok",
    ),
    pytest.param(
        [
            (
                "catalog/environments/prod.yaml",
                "      replicas: {min: 2, max: 4}\n",
                "      replicas: {min: 2, max: 4}\n      canary: {revision: 125c431e2ff41a156b9f9076f744d2f35dd6e67a}\n",
            )
        ],
        [
            "catalog/environments/prod.yaml:51:15: spec.models[2].canary.weightsSha256: canary revision '125c431e2ff41a156b9f9076f744d2f35dd6e67a' loads other weights than the model's; this environment requires pinned weights: add the SHA-256 of that revision's manifest"
        ],
        id="pinned-canary-weights",
    ),
    pytest.param(
        [
            (
                "catalog/environments/prod.yaml",
                "      replicas: {min: 2, max: 4}\n",
                "      replicas: {min: 2, max: 4}\n      canary: {revision: 125c431e2ff41a156b9f9076f744d2f35dd6e67a, weightsSha256: abababababababababababababababababababababababababababababababab}\n",
            )
        ],
        [],
        id="pinned-canary-weights-ok",
    ),
    pytest.param(
        [
            (
                "catalog/environments/prod.yaml",
                "      replicas: {min: 2, max: 4}\n",
                "      replicas: {min: 2, max: 4}\n      canary: {revision: 125c431e2ff41a156b9f9076f744d2f35dd6e67a, weightsSha256: abababababababababababababababababababababababababababababababab}\n",
            ),
            (
                "catalog/models/mixtral-8x7b-instruct.yaml",
                "gs://example-llm-weights/mistralai/Mixtral-8x7B-Instruct-v0.1/41bd4c9e7e4fb318ca40e721131d4933966c2cc1/",
                "gs://example-llm-weights/mixtral/current/",
            ),
        ],
        [
            "catalog/environments/prod.yaml:51:26: spec.models[2].canary.revision: no path segment of weights.uris.gcp names the model's revision '41bd4c9e7e4fb318ca40e721131d4933966c2cc1', so the canary's mirror on prod-gcp-usc1 cannot be located; this environment requires pinned weights",
            "catalog/models/mixtral-8x7b-instruct.yaml:15:12: spec.weights.uris.gcp: no path segment names the revision '41bd4c9e7e4fb318ca40e721131d4933966c2cc1'; the mirror is laid out by revision (<bucket>/<org>/<name>/<revision>/), so a synced prefix is never rewritten",
        ],
        id="pinned-canary-mirror",
    ),
    pytest.param(
        [
            (
                "catalog/environments/prod.yaml",
                "      replicas: {min: 2, max: 4}\n",
                "      replicas: {min: 2, max: 4}\n      canary: {image: 'vllm/vllm-openai:v0.12.0@sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc'}\n",
            )
        ],
        [],
        id="pinned-canary-image-only-ok",
    ),
    pytest.param(
        [
            (
                "catalog/clusters/dev-aws-use2.yaml",
                "name: a10g-x4",
                "name: a10g-x4-a-very-long-node-pool-name-that-goes-on-and-on-and-on",
            )
        ],
        [
            "catalog/clusters/dev-aws-use2.yaml:31:13: spec.nodePools[2].name: node pool name is 61 characters; the node pool 'gpu-<name>' would be 65 > 63"
        ],
        id="pool-name-long",
    ),
    pytest.param(
        [
            (
                "catalog/clusters/dev-aws-use2.yaml",
                "name: dev-aws-use2",
                "name: dev-aws-use2-with-a-long-suffix-for-testing-x",
            ),
            (
                "catalog/environments/dev.yaml",
                "clusters: [dev-aws-use2]",
                "clusters: [dev-aws-use2-with-a-long-suffix-for-testing-x]",
            ),
        ],
        [
            "catalog/clusters/dev-aws-use2.yaml:5:9: metadata.name: cluster name is 45 characters; the Istio remote secret 'istio-remote-secret-<name>' would be 65 > 63"
        ],
        id="cluster-name-long",
    ),
    pytest.param(
        [
            (
                "catalog/models/bge-m3.yaml",
                "routePrefix: /v1/bge-m3",
                "routePrefix: /v1/llama-3.1-8b",
            )
        ],
        [
            "catalog/environments/dev.yaml:33:7: spec.models[2]: routePrefix '/v1/llama-3.1-8b' of model 'bge-m3' is already used by model 'llama-3-1-8b-instruct' (models[0]) in this environment",
            "catalog/environments/prod.yaml:54:7: spec.models[4]: routePrefix '/v1/llama-3.1-8b' of model 'bge-m3' is already used by model 'llama-3-1-8b-instruct' (models[0]) in this environment",
            "catalog/environments/staging.yaml:49:7: spec.models[2]: routePrefix '/v1/llama-3.1-8b' of model 'bge-m3' is already used by model 'llama-3-1-8b-instruct' (models[0]) in this environment",
        ],
        id="route-clash",
    ),
    pytest.param(
        [
            (
                "catalog/models/bge-m3.yaml",
                "servedModelName: bge-m3",
                "servedModelName: llama-3.1-8b-instruct",
            )
        ],
        [
            "catalog/environments/dev.yaml:33:7: spec.models[2]: servedModelName 'llama-3.1-8b-instruct' of model 'bge-m3' is already used by model 'llama-3-1-8b-instruct' (models[0]) in this environment",
            "catalog/environments/prod.yaml:54:7: spec.models[4]: servedModelName 'llama-3.1-8b-instruct' of model 'bge-m3' is already used by model 'llama-3-1-8b-instruct' (models[0]) in this environment",
            "catalog/environments/staging.yaml:49:7: spec.models[2]: servedModelName 'llama-3.1-8b-instruct' of model 'bge-m3' is already used by model 'llama-3-1-8b-instruct' (models[0]) in this environment",
        ],
        id="served-clash",
    ),
    pytest.param(
        [
            (
                "catalog/environments/staging.yaml",
                "    gcp:\n      projectID: llm-staging-2207\n",
                "",
            ),
            (
                "catalog/environments/staging.yaml",
                "    vault:\n      server: https://vault.example.com:8200\n      path: llm/staging\n      role: llmgen-staging\n",
                "",
            ),
        ],
        [
            "catalog/environments/staging.yaml:15:5: spec.secretStores: no secret store for the gcp clusters (staging-gcp-usc1); add secretStores.gcp or secretStores.vault"
        ],
        id="secret-backend",
    ),
    pytest.param(
        [
            (
                "catalog/models/llama-3-1-8b-instruct.yaml",
                "      env: HF_TOKEN",
                "      env: HF_TOKEN\n      store: aws",
            )
        ],
        [
            "catalog/models/llama-3-1-8b-instruct.yaml:44:14: spec.secrets[0].store: secret 'llm-serving/hf-token' reads from store 'aws', which environment 'dev' does not configure (it configures: vault)",
            "catalog/models/llama-3-1-8b-instruct.yaml:44:14: spec.secrets[0].store: secret 'llm-serving/hf-token' reads from the aws store, which cluster 'prod-gcp-euw4' (gcp, environment 'prod') cannot use; use 'vault' or 'gcp'",
            "catalog/models/llama-3-1-8b-instruct.yaml:44:14: spec.secrets[0].store: secret 'llm-serving/hf-token' reads from the aws store, which cluster 'prod-gcp-usc1' (gcp, environment 'prod') cannot use; use 'vault' or 'gcp'",
            "catalog/models/llama-3-1-8b-instruct.yaml:44:14: spec.secrets[0].store: secret 'llm-serving/hf-token' reads from the aws store, which cluster 'staging-gcp-usc1' (gcp, environment 'staging') cannot use; use 'vault' or 'gcp'",
        ],
        id="secret-store",
    ),
    pytest.param(
        [
            (
                "catalog/models/llama-3-1-8b-instruct.yaml",
                "      env: HF_TOKEN\n",
                "      env: HF_TOKEN\n    - name: llm-serving/other\n      key: token\n      env: hf_token\n",
            )
        ],
        [
            "catalog/models/llama-3-1-8b-instruct.yaml:44:7: spec.secrets[1]: env 'hf_token' maps to Secret 'llama-3-1-8b-instruct-hf-token', like spec.secrets[0]; each secret needs its own environment variable"
        ],
        id="secret-names",
    ),
    pytest.param(
        [
            (
                "catalog/environments/dev.yaml",
                "  secretStores:\n",
                "  config:\n    LOG_LEVEL: info\n    DB_PASSWORD: hunter2hunter2\n  secretStores:\n",
            )
        ],
        [
            "catalog/environments/dev.yaml:16:18: spec.config.DB_PASSWORD: DB_PASSWORD: a credential-named key with a literal value; config is rendered into a ConfigMap, so credentials belong in a model's spec.secrets"
        ],
        id="config-credentials",
    ),
]


@pytest.mark.parametrize(("edits", "expected"), CASES)
def test_rule(
    request: pytest.FixtureRequest, scratch_repo: Path, edits: list[Edit], expected: list[str]
) -> None:
    case = request.node.callspec.id
    result = apply(scratch_repo, edits)
    assert new_problems(result, warnings=case in WARNING_CASES) == expected
    assert result.ok == all(": warning: " in line for line in expected)


WEIGHTS_CASES = [
    pytest.param(
        [("catalog/platform.yaml", "syncCluster: prod-aws-use1", "syncCluster: prod-aws-use9")],
        ["catalog/platform.yaml:106:20: spec.weightsMirror.aws.syncCluster: unknown cluster 'prod-aws-use9'; did you mean 'prod-aws-use1'?"],
        id="sync-cluster-unknown",
    ),
    pytest.param(
        [("catalog/platform.yaml", "syncCluster: prod-gcp-usc1", "syncCluster: prod-aws-usw2")],
        ["catalog/platform.yaml:111:20: spec.weightsMirror.gcp.syncCluster: cluster 'prod-aws-usw2' is on aws; the gcp mirror's sync Jobs need a gcp cluster (its workload identity writes the bucket)"],
        id="sync-cluster-other-cloud",
    ),
    pytest.param(
        [
            (
                "catalog/models/bge-m3.yaml",
                "aws: s3://example-llm-weights/BAAI",
                "aws: s3://other-weights/BAAI",
            )
        ],
        [
            "catalog/models/bge-m3.yaml:15:12: spec.weights.uris.aws: bucket 'other-weights' is not the aws mirror 'example-llm-weights' (platform spec.weightsMirror); llmgen syncs and checks only that bucket"
        ],
        id="mirror-bucket",
    ),
    pytest.param(
        [("catalog/platform.yaml", "    ack-iam-controller:\n", "    ack-iam-controllers:\n")],
        ["catalog/platform.yaml:104:7: spec.weightsMirror.aws: the S3 mirror's bucket and sync roles are ACK resources; add the platform add-on(s) ack-iam-controller (AWS Controllers for Kubernetes s3-chart and iam-chart, docs/weights.md), or nothing creates them"],
        id="mirror-ack-addons",
    ),
    pytest.param(
        [("catalog/clusters/prod-aws-use1.yaml", " oidcIssuer: oidc.eks.us-east-1.amazonaws.com/id/5C7B2E9A4D1F3A6B8E0C2D4F6A8B0C1D,", "")],
        ["catalog/platform.yaml:106:20: spec.weightsMirror.aws.syncCluster: sync cluster 'prod-aws-use1' has no spec.aws.oidcIssuer; the sync roles' trust policy (IRSA) names the cluster's OIDC provider: add it (aws eks describe-cluster --query cluster.identity.oidc.issuer, without https://)"],
        id="mirror-oidc-issuer",
    ),
    pytest.param(
        [("catalog/platform.yaml", '      projectNumber: "482193650417"\n', "")],
        ["catalog/platform.yaml:109:7: warning: spec.weightsMirror.gcp: no projectNumber: llmgen does not grant the Cloud Storage service agent roles/cloudkms.cryptoKeyEncrypterDecrypter on kmsKey; grant it once yourself (docs/weights.md), or the bucket cannot use the key"],
        id="mirror-project-number",
    ),
    pytest.param(
        [("catalog/clusters/prod-gcp-usc1.yaml", "    - storage.cnrm.cloud.google.com\n", "")],
        ["catalog/platform.yaml:111:20: spec.weightsMirror.gcp.syncCluster: sync cluster 'prod-gcp-usc1' does not declare storage.cnrm.cloud.google.com in spec.prerequisites; the bucket and sync service accounts are Config Connector resources: enable Config Connector there and list its groups"],
        id="mirror-cnrm-prerequisites",
    ),
]


@pytest.mark.parametrize(("edits", "expected"), WEIGHTS_CASES)
def test_weights_mirror_rule(scratch_repo: Path, edits: list[Edit], expected: list[str]) -> None:
    result = apply(scratch_repo, edits)
    assert new_problems(result, warnings=True) == expected


def test_unsynced_revision_is_a_warning(scratch_repo: Path) -> None:
    """A branch on a mirrored cloud renders, with a warning that nothing syncs it."""
    result = apply(
        scratch_repo,
        [
            (
                "catalog/models/bge-m3.yaml",
                "revision: 5617a9f61b028005a4858fdac845db406aefb181",
                "revision: main",
            ),
            (
                "catalog/environments/prod.yaml",
                "    - name: bge-m3\n      replicas: {min: 4, max: 8}\n",
                "",
            ),
        ],
    )
    assert result.ok
    mine = [p for p in new_problems(result, warnings=True) if "sync" in p]
    assert mine == [
        "catalog/models/bge-m3.yaml:11:15: warning: spec.source.revision: revision 'main' is not a 40-hex commit, so no sync Job mirrors it (a branch or tag can move; a mirror prefix never changes); pin the commit, or fill the mirror yourself"
    ]


def test_every_rule_is_exercised() -> None:
    from llmgen.catalog.rules import _rules

    names = {rule.__name__ for rule in _rules()}
    assert names == {
        "multi_node",  # tests/test_multinode.py
        "multi_node_canary",  # tests/test_multinode.py
        "multi_node_versions",  # tests/test_multinode.py
        "environment_clusters",
        "environment_models",
        "model_clusters",
        "routing_weights",
        "gpu_references",
        "node_pools",
        "pool_shapes",
        "parallelism",
        "engine_quantization",
        "scaling_targets",
        "weights_fit",
        "placement",
        "node_fit",
        "replica_bounds",
        "pinned",
        "pinned_weights",
        "name_lengths",
        "unique_routes",
        "secret_backends",
        "secret_stores",
        "secret_regions",  # tests/test_secrets.py
        "secret_names",
        "config_credentials",
        "cluster_versions",
        "reserved_names",  # tests/test_hostile_catalog.py
        "route_capture",  # tests/test_hostile_catalog.py
        "readiness_kubernetes",  # tests/test_gpureadiness_own_node.py
        # LoRA adapter rules, each exercised in test_adapters.py
        "adapter_names",
        "adapter_mirrors",
        "pinned_adapters",
        "pinned_tool_images",  # tests/test_pinned_images.py
        "lbc_vpc",  # tests/test_network_rules.py
        "global_name_coverage",  # tests/test_network_rules.py
        "dns_health_checks",  # tests/test_network_rules.py
        "sync_clusters",
        "mirror_resources",
        "mirror_uris",
        "unsynced_revisions",
    }


def test_a_suspended_environment_has_no_budget_check(scratch_repo: Path) -> None:
    result = apply(
        scratch_repo,
        [
            ("catalog/environments/dev.yaml", "monthlyUSD: 5000", "monthlyUSD: 100"),
            ("catalog/environments/dev.yaml", "requirePinned: false", "suspended: true"),
        ],
    )
    assert new_problems(result, warnings=True) == []


# ---------------------------------------------------------------- cost.py


@pytest.mark.parametrize(
    ("dtype", "quantization", "expected"),
    [
        ("float32", None, (4.0, "float32")),
        ("bfloat16", None, (2.0, "bfloat16")),
        ("float16", None, (2.0, "float16")),
        ("auto", None, (2.0, "auto")),
        ("bfloat16", "fp8", (1.0, "fp8")),
        ("float16", "int8", (1.0, "int8")),
        ("float16", "w8a8", (1.0, "w8a8")),
        ("float16", "awq", (0.5, "awq")),
        ("float32", "gptq", (0.5, "gptq")),
        ("auto", "int4", (0.5, "int4")),
        ("auto", "bitsandbytes", (0.5, "bitsandbytes")),
    ],
)
def test_bytes_per_param_quantisation_wins(
    dtype: str, quantization: str | None, expected: tuple[float, str]
) -> None:
    assert cost.bytes_per_param(dtype, quantization) == expected


def _line(model: str, low: int, high: int, hourly: float) -> cost.CostLine:
    return cost.CostLine(model, low, high, hourly)


def test_budget_caps_leave_a_fitting_environment_alone() -> None:
    lines = [_line("a", 1, 4, 1.0), _line("b", 0, 2, 2.0)]
    assert cost.budget_caps(lines, 10_000) == {"a": 4, "b": 2}


def test_budget_caps_share_the_headroom_and_stay_within_budget() -> None:
    lines = [_line("a", 1, 5, 1.0), _line("b", 0, 4, 2.0)]  # min $730, max $9,490
    budget = 730 + (9_490 - 730) / 2  # half the headroom
    caps = cost.budget_caps(lines, budget)
    assert caps == {"a": 3, "b": 2}
    assert sum(caps[x.model] * x.replica_hourly_usd * 730 for x in lines) <= budget


def test_budget_caps_fall_back_to_the_minimums() -> None:
    lines = [_line("a", 2, 5, 1.0)]
    assert cost.budget_caps(lines, 10) == {"a": 2}


def test_replica_hourly_prices_the_dearest_shape_of_the_cheapest_pool() -> None:
    cat = validate(REPO).catalog
    assert cat is not None
    llama = cat.models["llama-3-1-8b-instruct"]
    # l4-x1 is spot: g6.2xlarge $0.4277 and g6.4xlarge $0.5787 -> the dearer one.
    assert cost.replica_hourly(llama, cat.clusters["prod-aws-use1"], cat.gpus) == pytest.approx(
        0.5787
    )
    qwen = cat.models["qwen2-5-32b-instruct-awq"]
    # Two GPUs fit only l4-x4 (on-demand g6.12xlarge, $4.602 for 4 GPUs).
    assert cost.replica_hourly(qwen, cat.clusters["prod-aws-use1"], cat.gpus) == pytest.approx(
        2 * 4.602 / 4
    )
    big = cat.models["llama-3-3-70b-instruct"]
    assert cost.replica_hourly(big, cat.clusters["dev-aws-use2"], cat.gpus) is None


def test_replica_price_pays_for_gpus_its_memory_strands() -> None:
    """qwen at 96 GiB packs one replica per 4-GPU L4 node: it pays for all four GPUs."""
    import dataclasses

    cat = validate(REPO).catalog
    assert cat is not None
    qwen = dataclasses.replace(cat.models["qwen2-5-32b-instruct-awq"], memory_gib=96)
    assert cost.replica_hourly(qwen, cat.clusters["prod-gcp-usc1"], cat.gpus) == pytest.approx(
        4.0008
    )


def test_weights_need_gib() -> None:
    cat = validate(REPO).catalog
    assert cat is not None
    assert cost.weights_need_gib(cat.models["llama-3-3-70b-instruct"]) == pytest.approx(
        70.6 * 2 * 1.2
    )
    assert cost.weights_need_gib(cat.models["qwen2-5-32b-instruct-awq"]) == pytest.approx(
        32.8 * 0.5 * 1.2
    )


# --------------------------------------------------------------- hints.py


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("H100", "H100-80GB"),  # a prefix beats the closer edit distance of H200
        ("l4", "L4"),
        ("maxReplica", "maxReplicas"),
        ("prod-aws-use3", "prod-aws-use1"),
        ("zzz", None),
        ("", None),
    ],
)
def test_suggest(word: str, expected: str | None) -> None:
    candidates = ["L4", "H100-80GB", "H200", "maxReplicas", "prod-aws-use1", "prod-gcp-usc1"]
    assert suggest(word, candidates) == expected
