"""What each vLLM version accepts: a small capability table, read from the image tag.

vLLM's flags and accepted values move between releases; llmgen renders the
arguments of the version the model's image runs, and validate refuses what
that version would reject at start-up (a crash loop on a GPU node otherwise).

Evidence per entry (vllm-project/vllm):
- quantization: `QuantizationMethods` in vllm/model_executor/layers/quantization/
  __init__.py lists the values `--quantization` accepts; `int4`, `int8` and
  `w8a8` are schemes, not methods (INT8/W8A8 checkpoints load through
  `compressed-tensors`, which vLLM detects from the checkpoint's config).
- Marlin: `AWQMarlinConfig.get_min_capability()` and
  `GPTQMarlinConfig.get_min_capability()` return 80 (sm80, Ampere). With an
  explicit `--quantization awq` vLLM keeps the slow AWQ GEMM kernel and logs
  "Detected that the model can run with awq_marlin, however you specified
  quantization=awq explicitly, so forcing awq".
- Pooling: `--task` gave way to `--runner pooling` / `--convert embed`
  (vllm PR #21470, released in v0.10.1); later releases reject `--task`.
- Shutdown: `--shutdown-timeout` (drain in-flight requests on SIGTERM) exists
  from v0.18.0 (vllm PR #34730); before it SIGTERM aborts running requests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: The version assumed when an image's tag names none (a bare digest): the
#: oldest release this table describes, whose flags newer releases still take.
BASELINE = (0, 11)
_TAG_VERSION = re.compile(r":v?(\d+)\.(\d+)(?:\.\d+)?(?:[-.+@]|$)")


@dataclass(frozen=True)
class VllmCapabilities:
    """What one vLLM release line accepts."""

    since: tuple[int, int]
    #: `--quantization` values the release accepts (those llmgen's schema can name)
    quantizations: frozenset[str]
    #: GPU compute capability (major*10+minor) from which the Marlin kernels run
    marlin_min_capability: int
    #: how the OpenAI server is told to serve an embedding model
    embed_args: tuple[str, ...]
    #: whether `--shutdown-timeout` drains running requests on SIGTERM
    shutdown_timeout: bool


_QUANT = frozenset(
    {"awq", "awq_marlin", "gptq", "gptq_marlin", "fp8", "bitsandbytes", "compressed-tensors"}
)
TABLE: tuple[VllmCapabilities, ...] = (
    VllmCapabilities((0, 11), _QUANT, 80, ("--runner", "pooling", "--convert", "embed"), False),
    VllmCapabilities((0, 18), _QUANT, 80, ("--runner", "pooling", "--convert", "embed"), True),
)
#: Quantization schemes the catalog may name that no vLLM `--quantization` takes,
#: with what to write instead.
REFUSED = {
    "int4": "use awq or gptq (the checkpoint's own 4-bit method)",
    "int8": "omit engine.quantization for an INT8 compressed-tensors checkpoint "
    "(vLLM reads it from the checkpoint's config), or use fp8",
    "w8a8": "omit engine.quantization for a W8A8 compressed-tensors checkpoint "
    "(vLLM reads it from the checkpoint's config), or use fp8",
}
#: 4-bit methods with a Marlin variant vLLM runs much faster where the GPU allows it.
MARLIN = {"awq": "awq_marlin", "gptq": "gptq_marlin"}


def image_version(image: str) -> tuple[int, int]:
    """The `major.minor` of a vLLM image tag (`vllm/vllm-openai:v0.11.0@sha256:...`)."""
    m = _TAG_VERSION.search(image.split("/")[-1])
    if m is None:
        return BASELINE
    return int(m.group(1)), int(m.group(2))


def capabilities(image: str) -> VllmCapabilities:
    """The table entry of the newest release line not newer than the image's version."""
    version = image_version(image)
    found = TABLE[0]
    for entry in TABLE:
        if entry.since <= version:
            found = entry
    return found


def compute_capability(text: str | None) -> int | None:
    """`"8.9"` -> 89; None when the GpuCatalog does not say."""
    if not text:
        return None
    major, _, minor = text.partition(".")
    if not major.isdigit() or not (minor or "0").isdigit():
        return None
    return int(major) * 10 + int(minor or "0")


def quantization_arg(
    quantization: str | None, image: str, gpu_capability: int | None
) -> str | None:
    """The `--quantization` value to render (None: no flag).

    AWQ and GPTQ become their Marlin variants on GPUs that run them; where
    the GPU's capability is unknown the flag is left out, so vLLM picks the
    fastest kernel the GPU supports from the checkpoint's own config.
    """
    if not quantization:
        return None
    caps = capabilities(image)
    marlin = MARLIN.get(quantization)
    if marlin is None:
        return quantization
    if gpu_capability is None:
        return None
    return marlin if gpu_capability >= caps.marlin_min_capability else quantization
