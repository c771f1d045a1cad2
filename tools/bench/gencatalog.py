"""Write a synthetic llmgen catalog of N models x M clusters x E environments.

The benchmark's default shape (DESIGN.md "Quality bars") is 200 models, 12
clusters, 3 environments of 4 clusters each, every model in every
environment. Clusters alternate between AWS and GCP; models cycle through a
few realistic shapes so every rule and template path is exercised. The
shipped gpus.yaml and platform.yaml are reused, so prices and add-ons are real.

    python tools/bench/gencatalog.py OUT_DIR [--models 200] [--clusters 12] [--environments 3]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# name stem, parametersB, gpu, gpuCount, tensorParallel, dtype, quantization, task
SHAPES = [
    ("chat-8b", 8, "L4", 1, 1, "bfloat16", None, "generate"),
    ("chat-70b", 70.6, "H100-80GB", 4, 4, "bfloat16", None, "generate"),
    ("moe-8x7b", 46.7, "A100-80GB", 2, 2, "bfloat16", None, "generate"),
    ("code-32b-awq", 32.8, "L4", 2, 2, "float16", "awq", "generate"),
    ("embed-m3", 0.57, "L4", 1, 1, "float16", None, "embed"),
]

AWS_REGIONS = ["us-east-1", "us-west-2", "eu-west-1", "ap-northeast-1", "us-east-2", "eu-central-1"]
GCP_REGIONS = [
    "us-central1",
    "europe-west4",
    "us-east4",
    "asia-northeast1",
    "us-west1",
    "europe-west1",
]


def _hex(seed: str, n: int) -> str:
    return (hashlib.sha256(seed.encode()).hexdigest() * 2)[:n]


def cluster_yaml(name: str, cloud: str, region: str) -> str:
    zones = [f"{region}a", f"{region}b"] if cloud == "aws" else [f"{region}-a", f"{region}-b"]
    if cloud == "aws":
        pools = [
            ("l4-x1", "L4", 1, "instanceTypes: [g6.xlarge, g6.2xlarge]", "spot", 400),
            ("l4-x4", "L4", 4, "instanceTypes: [g6.12xlarge]", "on-demand", 200),
            ("a100-x8", "A100-80GB", 8, "instanceTypes: [p4de.24xlarge]", "on-demand", 60),
            ("h100-x8", "H100-80GB", 8, "instanceTypes: [p5.48xlarge]", "on-demand", 120),
        ]
        oidc_id = hashlib.sha256(name.encode()).hexdigest()[:32].upper()
        extra = (
            f'  aws:\n    accountID: "111122223333"\n    vpcName: {name}\n'
            f"    oidcIssuer: oidc.eks.{region}.amazonaws.com/id/{oidc_id}\n"
        )
    else:
        pools = [
            ("l4-x1", "L4", 1, "machineType: g2-standard-8", "spot", 400),
            ("l4-x4", "L4", 4, "machineType: g2-standard-48", "on-demand", 200),
            ("a100-x2", "A100-80GB", 2, "machineType: a2-ultragpu-2g", "on-demand", 200),
            ("h100-x8", "H100-80GB", 8, "machineType: a3-highgpu-8g", "on-demand", 120),
        ]
        extra = (
            "  gcp:\n    projectID: llm-bench-1234\n"
            # Config Connector is a GKE add-on, enabled with the cluster (verify checks it);
            # its IAM and Storage kinds serve the weights mirror on the sync cluster.
            "  prerequisites: [container.cnrm.cloud.google.com, core.cnrm.cloud.google.com,"
            " iam.cnrm.cloud.google.com, storage.cnrm.cloud.google.com]\n"
        )
    lines = [
        "apiVersion: llmgen.io/v1alpha1",
        "kind: Cluster",
        "metadata:",
        f"  name: {name}",
        "spec:",
        f"  cloud: {cloud}",
        f"  region: {region}",
        '  kubernetesVersion: "1.33"',
        f"  kubeContext: {name}",
        f"  network: net-{name}",
        extra.rstrip("\n"),
        "  nodePools:",
    ]
    for pname, gpu, per, types, cap, max_nodes in pools:
        lines += [
            f"    - name: {pname}",
            f"      gpu: {gpu}",
            f"      gpusPerNode: {per}",
            f"      {types}",
            f"      capacityType: {cap}",
            "      minNodes: 0",
            f"      maxNodes: {max_nodes}",
            f"      zones: [{', '.join(zones)}]",
        ]
    return "\n".join(lines) + "\n"


def model_yaml(name: str, shape: tuple[object, ...]) -> str:
    _stem, params, gpu, count, tp, dtype, quant, task = shape
    rev = _hex(name, 40)
    quant_line = f"\n    quantization: {quant}" if quant else ""
    task_line = f"\n  task: {task}" if task != "generate" else ""
    return f"""apiVersion: llmgen.io/v1alpha1
kind: Model
metadata:
  name: {name}
spec:{task_line}
  source:
    repo: example/{name}
    revision: {rev}
  parametersB: {params}
  weights:
    uris:
      aws: s3://bench-weights/{name}/{rev}/
      gcp: gs://bench-weights/{name}/{rev}/
    sha256: {_hex(name + "w", 64)}
  engine:
    image: vllm/vllm-openai:v0.11.0@sha256:{_hex("img", 64)}
    tensorParallel: {tp}
    maxModelLen: 8192
    dtype: {dtype}{quant_line}
  resources:
    gpu: {gpu}
    gpuCount: {count}
    cpu: 8
    memoryGiB: 64
  scaling:
    minReplicas: 1
    maxReplicas: 4
    targets:
      queueLength: 8
      p95LatencySeconds: 2
      kvCacheUsage: 0.85
    scaleToZero: false
    cooldownSeconds: 300
  serving:
    servedModelName: {name}
    routePrefix: /v1/{name}
  secrets:
    - name: llm-serving/hf-token
      key: token
      env: HF_TOKEN
  owner:
    team: team-{int(_hex(name, 4), 16) % 7}
    costCenter: cc-{int(_hex(name, 4), 16) % 13:04d}
"""


def _zone(env: str) -> str:
    """A Route 53 hosted zone ID for the environment (any well-formed one)."""
    return "Z0BENCH" + env.upper().replace("-", "")


def environment_yaml(name: str, clusters: list[str], models: list[str], pinned: bool) -> str:
    weights = "\n".join(
        f"      {c}: {w}" for c, w in zip(clusters, _weights(len(clusters)), strict=True)
    )
    # Models that may not scale to zero keep a replica on every cluster: the
    # minimum says so, so validate has nothing to raise (and warn about).
    low = len(clusters)
    model_lines = "\n".join(
        f"    - name: {m}\n      replicas: {{min: {low}, max: {max(4, low)}}}" for m in models
    )
    return f"""apiVersion: llmgen.io/v1alpha1
kind: Environment
metadata:
  name: {name}
spec:
  clusters: [{", ".join(clusters)}]
  domain: {name}.bench.example.com
  dns: {{provider: route53, zoneID: {_zone(name)}, accountID: "111122223333"}}
  requirePinned: {"true" if pinned else "false"}
  budget:
    monthlyUSD: 1000000000
    alertThresholds: [80, 100]
  secretStores:
    vault:
      server: https://vault.example.com:8200
      path: llm/{name}
      role: llmgen-{name}
  gateway:
    tls:
      issuer: letsencrypt-prod
    auth:
      oidc:
        issuer: https://auth.example.com/
        jwksUri: https://auth.example.com/.well-known/jwks.json
        audiences: [llm-api]
    cors:
      allowOrigins: [https://chat.example.com]
    waf:
      enabled: true
  routing:
    policy: weighted
    weights:
{weights}
  models:
{model_lines}
"""


def _weights(n: int) -> list[int]:
    base = [100 // n] * n
    base[0] += 100 - sum(base)
    return base


def _point_weights_mirror(path: Path, clusters: int) -> None:
    """The shipped weightsMirror, moved to the bench bucket and the first cluster per cloud."""
    text = path.read_text().replace("bucket: example-llm-weights", "bucket: bench-weights")
    text = text.replace("syncCluster: prod-aws-use1", "syncCluster: c00-aws")
    if clusters >= 2:
        text = text.replace("syncCluster: prod-gcp-usc1", "syncCluster: c01-gcp")
    else:  # no GCP cluster: no GCP mirror to sync
        head, sep, tail = text.partition("    gcp:\n      bucket: bench-weights\n")
        text = head + "".join(line + "\n" for line in tail.splitlines()[2:]) if sep else text
    path.write_text(text)


def generate(out: Path, models: int, clusters: int, environments: int) -> None:
    """Write the catalog (and copies of templates/schemas/overlays) into `out`."""
    if out.exists():
        shutil.rmtree(out)
    cat = out / "catalog"
    for sub in ("clusters", "environments", "models"):
        (cat / sub).mkdir(parents=True)
    shutil.copy(REPO / "catalog" / "gpus.yaml", cat / "gpus.yaml")
    shutil.copy(REPO / "catalog" / "platform.yaml", cat / "platform.yaml")
    _point_weights_mirror(cat / "platform.yaml", clusters)
    for folder in ("templates", "schemas"):
        shutil.copytree(REPO / folder, out / folder)
    names = []
    for i in range(clusters):
        cloud = "aws" if i % 2 == 0 else "gcp"
        regions = AWS_REGIONS if cloud == "aws" else GCP_REGIONS
        region = regions[(i // 2) % len(regions)]
        name = f"c{i:02d}-{cloud}"
        names.append(name)
        (cat / "clusters" / f"{name}.yaml").write_text(cluster_yaml(name, cloud, region))
    model_names = []
    for i in range(models):
        shape = SHAPES[i % len(SHAPES)]
        name = f"{shape[0]}-{i:03d}"
        model_names.append(name)
        (cat / "models" / f"{name}.yaml").write_text(model_yaml(name, shape))
    per_env = max(1, clusters // max(environments, 1))
    for e in range(environments):
        env_clusters = names[e * per_env : (e + 1) * per_env] or names[-1:]
        env = ["dev", "staging", "prod"][e] if e < 3 else f"env{e}"
        (cat / "environments" / f"{env}.yaml").write_text(
            environment_yaml(env, env_clusters, model_names, pinned=(env == "prod"))
        )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("out", type=Path)
    ap.add_argument("--models", type=int, default=200)
    ap.add_argument("--clusters", type=int, default=12)
    ap.add_argument("--environments", type=int, default=3)
    args = ap.parse_args()
    generate(args.out, args.models, args.clusters, args.environments)


if __name__ == "__main__":
    main()
