"""The CloudProvider interface: built-in clouds, and a third cloud added by a class alone."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pytest
import yaml

from llmgen.catalog.load import load_catalog
from llmgen.catalog.model import Catalog
from llmgen.clouds import (
    CloudProvider,
    NodePoolResource,
    WeightsSync,
    get_provider,
    known_clouds,
    register,
    unregister,
)
from llmgen.plan.build import build_plan
from llmgen.render import engine as render

if TYPE_CHECKING:
    from llmgen.catalog.model import Cluster, Gpu, NodePool
    from llmgen.plan.build import ClusterPlan

REPO = Path(__file__).resolve().parents[1]


class FakeProvider(CloudProvider):
    """A minimal third cloud: node pools are a ConfigMap per pool, from its own template."""

    name: ClassVar[str] = "fakecloud"
    storage_scheme: ClassVar[str] = "fake"
    secret_store_backend: ClassVar[str] = "vault"

    def gpu_node_selector(self, cluster: Cluster, pool: NodePool, gpu: Gpu) -> dict[str, str]:
        return {"fakecloud.example/pool": pool.name}

    def gpu_tolerations(self, pool: NodePool) -> list[dict[str, str]]:
        return [{"key": "fakecloud.example/gpu", "operator": "Exists", "effect": "NoSchedule"}]

    def gpu_node_labels(self, cluster: Cluster, pool: NodePool, gpu: Gpu) -> dict[str, str]:
        return {"fakecloud.example/pool": pool.name}

    def gpu_taints(self, pool: NodePool) -> list[dict[str, str]]:
        return [{"key": "fakecloud.example/gpu", "value": "true", "effect": "NoSchedule"}]

    def nodepool_resources(self, cp: ClusterPlan) -> list[NodePoolResource]:
        return [
            NodePoolResource(
                "ConfigMap",
                f"fake-{p.name}",
                "nodepools/fakecloud/pool.yaml.j2",
                {"name": f"fake-{p.name}", "labels": cp.labels, "gpus": p.gpus_per_node},
                pool=p.name,
            )
            for p in cp.cluster.node_pools
        ]

    def workload_identity_annotations(
        self, cluster: Cluster, namespace: str, service_account: str
    ) -> dict[str, str]:
        return {"fakecloud.example/identity": f"{namespace}.{service_account}"}

    def weights_sync(self, uri: str, dest: str, workers: int) -> WeightsSync:
        return WeightsSync("example.com/fake-copy:1.0", ("fake-copy", uri, dest), {})

    def load_balancer_annotations(self, cluster: Cluster) -> dict[str, str]:
        return {}

    def acme_dns01_solver(self, cluster: Cluster, domain: str) -> dict[str, Any]:
        return {"webhook": {"groupName": "acme.fakecloud.example", "solverName": "fakedns"}}


FAKE_TEMPLATE = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ name | q }}
  namespace: kube-system
  labels:{{ labels | block(4) }}
data:
  gpusPerNode: {{ gpus | string | q }}
"""


@pytest.fixture
def fake_cloud() -> Iterator[type[FakeProvider]]:
    register(FakeProvider)
    try:
        yield FakeProvider
    finally:
        unregister(FakeProvider.name)
    assert FakeProvider.name not in known_clouds()


def test_third_cloud_needs_only_a_class_and_its_templates(
    fake_cloud: type[FakeProvider], tmp_path: Path
) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(REPO / "templates", templates)
    (templates / "nodepools" / "fakecloud").mkdir()
    (templates / "nodepools" / "fakecloud" / "pool.yaml.j2").write_text(FAKE_TEMPLATE)

    docs, _ = load_catalog(REPO)
    cat = Catalog.build(docs)
    # Move one AWS cluster to the new cloud; plan and render are used unchanged.
    name = "dev-aws-use2"
    cat.clusters[name] = dataclasses.replace(cat.clusters[name], cloud=fake_cloud.name)
    # The GPU catalog is data, not code: the new cloud sells the same shapes.
    for key, gpu in cat.gpus.items():
        if "aws" in gpu.offers:
            offers = {**gpu.offers, fake_cloud.name: gpu.offers["aws"]}
            cat.gpus[key] = dataclasses.replace(gpu, offers=offers)
    plan = build_plan(cat)
    cp = plan.clusters[name]
    assert isinstance(cp.provider, FakeProvider)
    assert cp.placements  # models still land on the cluster's pools

    files = render.render_plan(plan, templates, REPO, clusters=[name]).files
    rendered: list[dict[str, Any]] = []
    for body in files.values():
        rendered += [d for d in yaml.safe_load_all(body) if d]
    pools = {d["metadata"]["name"]: d for d in rendered if d["kind"] == "ConfigMap"}
    assert set(pools) == {f"fake-{p.name}" for p in cp.cluster.node_pools}
    kinds = {d["kind"] for d in rendered}
    assert not {"NodePool", "EC2NodeClass", "ComputeClass", "ContainerNodePool"} & kinds
    releases = {d["metadata"]["name"] for d in rendered if d["kind"] == "HelmRelease"}
    assert "karpenter" not in releases  # an AWS-only add-on stays on AWS
    for p in cp.placements:
        dep = next(
            d for d in rendered if d["kind"] == "Deployment" and d["metadata"]["name"] == p.name
        )
        pod = dep["spec"]["template"]["spec"]
        assert pod["nodeSelector"] == {"fakecloud.example/pool": p.pool.name}
        assert pod["tolerations"] == fake_cloud().gpu_tolerations(p.pool)
        # no weights mirror on this cloud: vLLM loads the pinned revision itself
        assert "initContainers" not in pod
        args = pod["containers"][0]["args"]
        assert args[args.index("--revision") + 1] == p.model.revision
        sa = next(
            d for d in rendered if d["kind"] == "ServiceAccount" and d["metadata"]["name"] == p.name
        )
        assert sa["metadata"]["annotations"] == {
            "fakecloud.example/identity": f"{p.namespace}.{p.name}"
        }


def test_unknown_cloud_is_a_clear_error() -> None:
    with pytest.raises(KeyError, match="no cloud provider named 'nope'"):
        get_provider("nope")


def test_builtin_clouds_answer_the_whole_interface() -> None:
    docs, _ = load_catalog(REPO)
    cat = Catalog.build(docs)
    assert {"aws", "gcp"} <= set(known_clouds())
    for cluster in cat.clusters.values():
        provider = get_provider(cluster.cloud)
        assert provider.secret_store_backend in {"aws", "gcp"}
        assert provider.load_balancer_annotations(cluster)
        dns01 = provider.acme_dns01_solver(cluster, "llm.example.com")
        assert set(dns01) == {"route53" if cluster.cloud == "aws" else "cloudDNS"}
        ident = provider.workload_identity_annotations(cluster, "llm-x", "x")
        for model in cat.models.values():
            uri = provider.weights_uri(model)
            assert uri.startswith(f"{provider.storage_scheme}://")
            sync = provider.weights_sync(uri, "/models/weights", 4)
            where = (*sync.command, *sync.env.values())
            assert uri in where and "/models/weights" in where
            assert ":" in sync.image.rsplit("/", 1)[-1]  # a pinned tag, never implicit latest
        if cluster.cloud == "aws":
            account = cluster.cloud_settings["accountID"]
            assert ident == {
                "eks.amazonaws.com/role-arn": f"arn:aws:iam::{account}:role/{cluster.name}-x"
            }
        else:
            project = cluster.cloud_settings["projectID"]
            assert ident == {
                "iam.gke.io/gcp-service-account": f"x@{project}.iam.gserviceaccount.com"
            }
        for pool in cluster.node_pools:
            gpu = cat.gpus[pool.gpu]
            labels = provider.gpu_node_labels(cluster, pool, gpu)
            selector = provider.gpu_node_selector(cluster, pool, gpu)
            taints = {t["key"] for t in provider.gpu_taints(pool)}
            tolerated = {t["key"] for t in provider.gpu_tolerations(pool)}
            assert "nvidia.com/gpu" in taints
            assert taints <= tolerated  # a GPU pod tolerates everything its pool carries
            if cluster.cloud == "gcp":  # GKE applies the labels it is given
                assert selector.items() <= labels.items()
