"""Wiring across Flux layers: what must exist before whom, and pods that cannot work.

- A Secret or ConfigMap a pod mounts or reads (not `optional`) exists, or is
  produced (ExternalSecret, Certificate) in the pod's layer or an earlier
  one; a later layer would wait on this one (`wait: true`) while its pods
  wait on that Secret. A Secret a chart's controller reads only at start-up
  (`charts.STARTUP_SECRETS`) must come from a strictly earlier layer.
  References that are resolved at run time (an Istio Gateway's
  `credentialName`, a secret store's auth, `valuesFrom`) need the object
  somewhere in the cluster. A pod's ServiceAccount exists.
- Every custom kind is installed by a HelmRelease of a strictly earlier layer
  (`charts.CRD_GROUPS`), by Flux itself, by the cloud
  (`charts.PLATFORM_GROUPS`), or is a declared prerequisite of the cluster
  (`Cluster.spec.prerequisites`): otherwise the layer's server-side dry-run
  fails with `no matches for kind` and nothing of it is applied.
- A NetworkPolicy that restricts a pod's egress leaves DNS (port 53, UDP and
  TCP) reachable, and 443 when an init container copies weights with a cloud
  CLI.
- `progressDeadlineSeconds` (default 600) covers the startup probe's budget,
  else the Deployment reports ProgressDeadlineExceeded (kstatus: Failed) on
  every rollout; `terminationGracePeriodSeconds` (default 30) exceeds the
  preStop sleep, else the kubelet kills the container mid-drain.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from llmgen.catalog.load import PathKey
from llmgen.errors import Diagnostic
from llmgen.verify import charts
from llmgen.verify.apiserver import containers
from llmgen.verify.cluster import Cluster, Pods
from llmgen.verify.manifests import Manifest
from llmgen.verify.pods import check_deadlines, check_fit, check_network
from llmgen.verify.schemas import split_api_version
from llmgen.verify.stats import Family

# Objects every cluster has without any manifest: Flux's bootstrap secret,
# the CA bundle ConfigMaps the control plane (and istiod) put in every namespace.
_ALWAYS = {
    ("Secret", "flux-system", "flux-system"),
}
_ALWAYS_CONFIGMAPS = {"kube-root-ca.crt", "istio-ca-root-cert"}
_STORES = {"SecretStore", "ClusterSecretStore", "Issuer", "ClusterIssuer"}


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def check_refs(cluster: Cluster, family: Family) -> list[Diagnostic]:
    producers = _producers(cluster)
    out: list[Diagnostic] = []
    out += _pod_refs(cluster, producers, family)
    out += _runtime_refs(cluster, producers, family)
    out += _startup_secrets(cluster, producers, family)
    out += _custom_kinds(cluster, family)
    out += check_network(cluster, family)
    out += check_deadlines(cluster, family)
    out += check_fit(cluster, family)
    return out


def _producers(cluster: Cluster) -> dict[tuple[str, str, str], list[tuple[Manifest, str]]]:
    """(kind, namespace, name) -> the objects that create it, with their layer."""
    made: dict[tuple[str, str, str], list[tuple[Manifest, str]]] = {}
    for m in cluster.docs:
        ns = cluster.namespace_of(m)
        spec = _dict(m.data.get("spec"))
        keys: list[tuple[str, str, str]] = []
        if m.kind in ("Secret", "ConfigMap") and m.api_version == "v1":
            keys.append((m.kind, ns, m.name))
        elif m.kind == "ExternalSecret":
            target = _dict(spec.get("target"))
            if target.get("creationPolicy") != "None":
                keys.append(("Secret", ns, str(target.get("name") or m.name)))
        elif m.kind == "Certificate" and isinstance(spec.get("secretName"), str):
            keys.append(("Secret", ns, spec["secretName"]))
        elif m.kind == "ServiceAccount":
            keys.append(("ServiceAccount", ns, m.name))
        for key in keys:
            made.setdefault(key, []).append((m, cluster.layer_of(m)))
    return made


def _pod_uses(spec: dict[str, Any]) -> Iterator[tuple[PathKey, str, str]]:
    """(path in the pod spec, kind, name) of every required Secret/ConfigMap."""
    for v, volume in enumerate(_list(spec.get("volumes"))):
        volume = _dict(volume)
        secret, config = _dict(volume.get("secret")), _dict(volume.get("configMap"))
        if secret and not secret.get("optional"):
            yield ("volumes", v, "secret", "secretName"), "Secret", str(secret.get("secretName"))
        if config and not config.get("optional"):
            yield ("volumes", v, "configMap", "name"), "ConfigMap", str(config.get("name"))
        for s, source in enumerate(_list(_dict(volume.get("projected")).get("sources"))):
            for field, kind in (("secret", "Secret"), ("configMap", "ConfigMap")):
                ref = _dict(_dict(source).get(field))
                if ref and not ref.get("optional"):
                    yield (
                        ("volumes", v, "projected", "sources", s, field, "name"),
                        kind,
                        str(ref.get("name")),
                    )
    for field, index, container in containers(spec):
        for e, env in enumerate(_list(container.get("env"))):
            source = _dict(_dict(env).get("valueFrom"))
            for key, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
                ref = _dict(source.get(key))
                if ref and not ref.get("optional"):
                    yield (
                        (field, index, "env", e, "valueFrom", key, "name"),
                        kind,
                        str(ref.get("name")),
                    )
        for e, env in enumerate(_list(container.get("envFrom"))):
            for key, kind in (("secretRef", "Secret"), ("configMapRef", "ConfigMap")):
                ref = _dict(_dict(env).get(key))
                if ref and not ref.get("optional"):
                    yield (field, index, "envFrom", e, key, "name"), kind, str(ref.get("name"))


def _pod_refs(
    cluster: Cluster,
    producers: dict[tuple[str, str, str], list[tuple[Manifest, str]]],
    family: Family,
) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for pods in cluster.pods:
        m = pods.owner
        if m is None:
            continue
        base: PathKey = ("spec",) if m.kind == "Pod" else ("spec", "template", "spec")
        uses = list(_pod_uses(pods.spec))
        if pods.service_account != "default":
            uses.append((("serviceAccountName",), "ServiceAccount", pods.service_account))
        for path, kind, name in uses:
            family.run += 1
            problem = _needed_by(cluster, producers, pods, kind, name)
            if problem:
                family.failed += 1
                out.append(m.diagnostic((*base, *path), problem))
    return out


def _needed_by(
    cluster: Cluster,
    producers: dict[tuple[str, str, str], list[tuple[Manifest, str]]],
    pods: Pods,
    kind: str,
    name: str,
) -> str | None:
    key = (kind, pods.namespace, name)
    if key in _ALWAYS or (kind == "ConfigMap" and name in _ALWAYS_CONFIGMAPS):
        return None
    made = producers.get(key)
    if not made:
        if cluster.opaque(pods.namespace):
            return None  # a chart we do not model may create it
        return (
            f"no {kind} {name} in namespace {pods.namespace}, and nothing in this cluster "
            "produces it; the pod never starts"
        )
    if any(cluster.same_or_before(layer, pods.layer) for _, layer in made):
        return None
    producer, layer = made[0]
    return (
        f"{kind} {name} is produced by {producer.identity} in layer {layer or '(none)'}, "
        f"which is not applied before this pod's layer {pods.layer}; the pod waits for it "
        "and the layer never becomes Ready"
    )


def _runtime_refs(
    cluster: Cluster,
    producers: dict[tuple[str, str, str], list[tuple[Manifest, str]]],
    family: Family,
) -> list[Diagnostic]:
    """Secrets read at run time by a controller: they must exist somewhere in the cluster."""
    out: list[Diagnostic] = []
    for m in cluster.docs:
        ns = cluster.namespace_of(m)
        spec = _dict(m.data.get("spec"))
        refs: list[tuple[PathKey, str, str, str]] = []
        if m.kind == "Gateway" and split_api_version(m.api_version)[0] == "networking.istio.io":
            for s, server in enumerate(_list(spec.get("servers"))):
                name = _dict(_dict(server).get("tls")).get("credentialName")
                if isinstance(name, str):
                    refs.append(
                        (("spec", "servers", s, "tls", "credentialName"), "Secret", ns, name)
                    )
        elif m.kind == "HelmRelease":
            for v, source in enumerate(_list(spec.get("valuesFrom"))):
                source = _dict(source)
                if not source.get("optional") and source.get("kind") in ("Secret", "ConfigMap"):
                    refs.append(
                        (
                            ("spec", "valuesFrom", v, "name"),
                            str(source["kind"]),
                            ns,
                            str(source.get("name")),
                        )
                    )
        elif m.kind in ("GitRepository", "HelmRepository", "OCIRepository"):
            name = _dict(spec.get("secretRef")).get("name")
            if isinstance(name, str):
                refs.append((("spec", "secretRef", "name"), "Secret", ns, name))
        elif m.kind in ("ExternalSecret", "Certificate"):
            # The store or issuer the controller asks: without it, nothing syncs.
            field, default = (
                ("secretStoreRef", "SecretStore")
                if m.kind == "ExternalSecret"
                else ("issuerRef", "Issuer")
            )
            ref = _dict(spec.get(field))
            kind = str(ref.get("kind") or default)
            if isinstance(ref.get("name"), str) and kind in _STORES:
                scope = "" if kind.startswith("Cluster") else ns
                refs.append((("spec", field, "name"), kind, scope, ref["name"]))
        for path, kind, namespace, name in refs:
            family.run += 1
            key = (kind, namespace, name)
            if key in _ALWAYS or producers.get(key) or cluster.get(*key):
                continue
            if namespace and cluster.opaque(namespace):
                continue
            family.failed += 1
            where = f" in namespace {namespace}" if namespace else ""
            out.append(
                m.diagnostic(
                    path, f"no {kind} {name}{where}, and nothing in this cluster produces it"
                )
            )
    return out


def _startup_secrets(
    cluster: Cluster,
    producers: dict[tuple[str, str, str], list[tuple[Manifest, str]]],
    family: Family,
) -> list[Diagnostic]:
    """A Secret a controller reads only at start-up exists before the controller starts.

    Its producer must be in a layer strictly before the HelmRelease's, and
    that layer must wait for the Secret itself: a rendered Secret, or a
    `healthChecks` entry naming it. kstatus reads an ExternalSecret that has
    not synced as Current (it only knows Reconciling/Stalled on custom
    resources: kubernetes-sigs/cli-utils pkg/kstatus/status/generic.go), so
    without that entry the layer is Ready before the Secret exists.
    """
    out: list[Diagnostic] = []
    for m in cluster.by_kind.get("HelmRelease", []):
        spec = _dict(m.data.get("spec"))
        chart = charts.chart_name(spec, cluster.oci_urls, cluster.namespace_of(m))
        namespace = str(spec.get("targetNamespace") or cluster.namespace_of(m))
        layer = cluster.layer_of(m)
        for secret in charts.STARTUP_SECRETS.get(chart, ()):
            made = producers.get(("Secret", namespace, secret))
            if not made:
                continue  # not plugged in: the controller makes its own
            family.run += 1
            key = ("Secret", namespace, secret)
            if any(
                cluster.before(where, layer)
                and (p.kind == "Secret" or key in cluster.health_checks.get(where, set()))
                for p, where in made
            ):
                continue
            producer, where = made[0]
            family.failed += 1
            if cluster.before(where, layer):
                why = (
                    f"layer {where} does not health-check Secret {namespace}/{secret} "
                    f"(spec.healthChecks), so it is Ready before {producer.identity} has synced"
                )
            else:
                why = (
                    f"{producer.identity} ({producer.file}:{producer.line}) produces it in "
                    f"layer {where}, not before layer {layer}"
                )
            out.append(
                m.diagnostic(
                    ("spec", "chart"),
                    f"{chart} reads Secret {namespace}/{secret} only at start-up, but {why}: "
                    "the controller starts without it and ignores it until its next restart",
                )
            )
    return out


def _custom_kinds(cluster: Cluster, family: Family) -> list[Diagnostic]:
    installed: dict[str, list[str]] = {}
    for m in cluster.by_kind.get("HelmRelease", []):
        spec = _dict(m.data.get("spec"))
        chart = charts.chart_name(spec, cluster.oci_urls, cluster.namespace_of(m))
        for group in charts.installs_crds(chart, spec):
            installed.setdefault(group, []).append(cluster.layer_of(m))
    for m in cluster.by_kind.get("CustomResourceDefinition", []):
        group = str(_dict(m.data.get("spec")).get("group"))
        installed.setdefault(group, []).append(cluster.layer_of(m))
    # A Flux Kustomization applying an upstream folder of CRDs: its own layer
    # installs them (it is the parent that health-checks the CRDs).
    for m in cluster.by_kind.get("Kustomization", []):
        spec = _dict(m.data.get("spec"))
        source = _dict(spec.get("sourceRef"))
        if source.get("kind") != "GitRepository":
            continue
        ns = str(source.get("namespace") or cluster.namespace_of(m))
        repo = cluster.get("GitRepository", ns, str(source.get("name")))
        if repo is None:
            continue
        key = charts.git_source_key(_dict(repo.data.get("spec")), str(spec.get("path", "")))
        for group in charts.GIT_CRD_SOURCES.get(key, ()):
            installed.setdefault(group, []).append(cluster.layer_of(m))
    prerequisites = set(cluster.facts.prerequisites)
    # Without the catalog's word on the cloud, a cloud's own groups cannot be
    # judged: they are counted as skipped, never as passed.
    unknown_cloud = {g for gs in charts.PLATFORM_GROUPS.values() for g in gs}
    provided = set(charts.PLATFORM_GROUPS.get(cluster.facts.cloud, ()))
    out: list[Diagnostic] = []
    for m in cluster.docs:
        group = split_api_version(m.api_version)[0]
        if group in charts.BUILTIN_GROUPS or group.endswith(charts.FLUX_SUFFIX):
            continue
        if group.startswith("kustomize.config.k8s.io"):
            continue
        if not cluster.facts.cloud and group in unknown_cloud:
            family.skipped += 1
            continue
        family.run += 1
        if group in provided or group in prerequisites or f"{group}/{m.kind}" in prerequisites:
            continue
        layer = cluster.layer_of(m)
        if not layer:
            continue  # in no Flux path: flux_refs reports the path, nothing applies it
        layers = installed.get(group, [])
        if any(cluster.before(where, layer) for where in layers):
            continue
        family.failed += 1
        if layers:
            why = (
                f"the HelmRelease installing {group} is in layer {layers[0]}, "
                f"not before layer {layer}"
            )
        else:
            why = (
                f"no earlier layer installs {group} and the cluster does not declare it in "
                "spec.prerequisites"
            )
        out.append(
            m.diagnostic(
                (),
                f"{m.kind} ({m.api_version}): {why}; the layer's dry-run fails with "
                f'no matches for kind "{m.kind}" and nothing of it is applied',
            )
        )
    return out
