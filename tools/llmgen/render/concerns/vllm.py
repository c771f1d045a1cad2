"""The vLLM container: arguments for its version, environment, and a drain that finishes streams.

Decisions made here, per track of a placement:
- Arguments follow the capability table of the image's vLLM version
  (catalog/engines.py): AWQ/GPTQ run on the Marlin kernels where the GPU has
  them, embedding models use the pooling runner flags, and `--max-num-seqs`
  is always explicit, because the autoscaler's batch signal and the
  gateway's circuit breaker are sized from it.
- vLLM runs as a UID with no passwd entry. torch Inductor calls
  `getpass.getuser()` at import (torch/_inductor/runtime/cache_dir_utils.py
  `default_cache_dir`, pytorch/pytorch#140765), which raises KeyError unless
  USER or LOGNAME is set; both are, and the Inductor and Triton caches go to
  the writable /tmp emptyDir.
- Weights from the mirror load offline, so Hugging Face hub tokens are not
  injected there (nor does Reloader restart pods when they rotate); a track
  that loads from the hub keeps them.
- Termination drains: before vLLM 0.18 SIGTERM aborts running requests
  (kserve/kserve#5496), so the preStop hook waits until vLLM reports no
  running or waiting request, bounded by the model's longest route timeout,
  and the grace period covers that wait. From 0.18, `--shutdown-timeout`
  does the same inside vLLM (vllm PR #34730; termination grace >= preStop +
  shutdown timeout, vllm PR #43208).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmgen.catalog import engines, names
from llmgen.plan import routing
from llmgen.render.concerns import weights

if TYPE_CHECKING:
    from llmgen.catalog.model import Gpu, Model, ModelSecret

PORT = 8000
#: The user vLLM's libraries see (any non-empty name works; the UID has no passwd entry).
USER = "vllm"
#: Environment variables holding Hugging Face hub credentials.
HUB_TOKEN_ENVS = frozenset({"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_TOKEN"})
#: Seconds the preStop hook waits before it looks at vLLM's load: endpoints and
#: the mesh stop sending new requests here meanwhile.
UNROUTE_SECONDS = 15
#: After the drain, vLLM gets this long to exit on SIGTERM before SIGKILL.
EXIT_SECONDS = 30
#: Seconds between two looks at vLLM's /metrics while draining.
DRAIN_POLL_SECONDS = 5

# Runs in the vLLM image's own Python; the numbers come as arguments from
# llmgen, never as text pasted into the script. It returns when vLLM reports
# no running or waiting request, when /metrics stops answering (vLLM is gone)
# or at the deadline.
DRAIN_SCRIPT = """\
import sys, time, urllib.request
port, unroute, bound, poll = (int(a) for a in sys.argv[1:5])
deadline = time.monotonic() + bound
time.sleep(unroute)
url = "http://127.0.0.1:%d/metrics" % port
names = ("vllm:num_requests_running", "vllm:num_requests_waiting")
while time.monotonic() < deadline:
    try:
        text = urllib.request.urlopen(url, timeout=5).read().decode()
    except OSError:
        break
    lines = [line for line in text.splitlines() if line.startswith(names)]
    busy = sum(float(line.rsplit(" ", 1)[1]) for line in lines)
    if busy == 0:
        break
    time.sleep(poll)
"""


def capabilities(model: Model) -> engines.VllmCapabilities:
    return engines.capabilities(model.image)


def drain_seconds(model: Model) -> int:
    """The longest a request of this model may run: the bound of the drain."""
    return routing.route_timeout_seconds(model)


def prestop(model: Model) -> dict[str, Any]:
    """The preStop handler (Kubernetes `lifecycle.preStop`)."""
    if capabilities(model).shutdown_timeout:
        # vLLM drains itself on SIGTERM; only wait for routing to move away.
        return {"sleep": {"seconds": UNROUTE_SECONDS}}
    argv = [str(PORT), str(UNROUTE_SECONDS), str(drain_seconds(model)), str(DRAIN_POLL_SECONDS)]
    return {"exec": {"command": ["python3", "-c", DRAIN_SCRIPT, *argv]}}


def grace_seconds(model: Model) -> int:
    """terminationGracePeriodSeconds: the whole drain, then time to exit."""
    if capabilities(model).shutdown_timeout:
        return UNROUTE_SECONDS + drain_seconds(model) + EXIT_SECONDS
    return drain_seconds(model) + EXIT_SECONDS


def args(model: Model, gpu: Gpu, mirrored: bool) -> list[str]:
    """The OpenAI server's arguments for this track's model, image and GPU."""
    m = model
    caps = capabilities(m)
    if mirrored:
        source = ["--model", weights.WEIGHTS_DIR]
    else:
        source = ["--model", m.repo, "--revision", m.revision]
    out = [
        *source,
        "--served-model-name", m.served_model_name,
        "--port", str(PORT),
        "--tensor-parallel-size", str(m.tensor_parallel),
        "--max-model-len", str(m.max_model_len),
        "--dtype", m.dtype,
    ]  # fmt: skip
    if m.pipeline_parallel > 1:
        out += ["--pipeline-parallel-size", str(m.pipeline_parallel)]
    capability = engines.compute_capability(gpu.compute_capability)
    quantization = engines.quantization_arg(m.quantization, m.image, capability)
    if quantization:
        out += ["--quantization", quantization]
    if m.task == "embed":
        out += list(caps.embed_args)
    if not _has_flag(m.extra_args, "--max-num-seqs"):
        out += ["--max-num-seqs", str(routing.max_num_seqs(m))]
    if caps.shutdown_timeout and not _has_flag(m.extra_args, "--shutdown-timeout"):
        out += ["--shutdown-timeout", str(drain_seconds(m))]
    return out + list(m.extra_args)


def _has_flag(extra: tuple[str, ...], flag: str) -> bool:
    return any(a == flag or a.startswith(flag + "=") for a in extra)


def injected_secrets(model: Model, mirrored: bool) -> list[ModelSecret]:
    """The model's secrets the container gets: hub tokens only where it reads the hub."""
    return [s for s in model.secrets if not (mirrored and s.env in HUB_TOKEN_ENVS)]


def env(model: Model, mirrored: bool) -> list[dict[str, Any]]:
    """Environment of the vLLM container: identity, caches on emptyDirs, hub policy, secrets."""
    out: list[dict[str, Any]] = [
        {"name": "HOME", "value": "/tmp"},
        {"name": "USER", "value": USER},
        {"name": "LOGNAME", "value": USER},
        {"name": "XDG_CACHE_HOME", "value": "/tmp/.cache"},
        {"name": "VLLM_CACHE_ROOT", "value": "/tmp/.cache/vllm"},
        {"name": "TORCHINDUCTOR_CACHE_DIR", "value": "/tmp/.cache/torchinductor"},
        {"name": "TRITON_CACHE_DIR", "value": "/tmp/.cache/triton"},
        {"name": "HF_HOME", "value": "/tmp/.cache/huggingface"},
        {"name": "VLLM_NO_USAGE_STATS", "value": "1"},
        {"name": "DO_NOT_TRACK", "value": "1"},
    ]
    if mirrored:
        # Verified local weights only: never reach the public hub at run time.
        out += [
            {"name": "HF_HUB_OFFLINE", "value": "1"},
            {"name": "TRANSFORMERS_OFFLINE", "value": "1"},
        ]
    for s in injected_secrets(model, mirrored):
        out.append(
            {
                "name": s.env,
                "valueFrom": {
                    "secretKeyRef": {"name": names.secret_name(model.name, s.env), "key": s.key}
                },
            }
        )
    return out


def pull_policy(image: str) -> str:
    """IfNotPresent for a digest-pinned image (the bytes cannot change), else Always."""
    return "IfNotPresent" if "@sha256:" in image else "Always"
