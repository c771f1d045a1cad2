"""What the API server checks beyond the OpenAPI schema, for the core kinds llmgen renders.

Strict schemas say a field is a string; the API server's validation code
(k8s.io/kubernetes/pkg/apis/core/validation/validation.go and
apps/validation) says more, and rejects the object with 422:

- a workload's selector must match its pod template's labels;
- container and Service port names are IANA service names (at most 15
  lower-case letters, digits and '-', at least one letter), unique per
  container (per Service), container names unique in the pod;
- a volumeMount names a volume of the pod; volume names are unique;
- env var names: C identifiers plus '-' and '.' before Kubernetes 1.32
  (RelaxedEnvironmentVariableValidation, beta and on in 1.32), any printable
  ASCII but '=' from 1.32 on;
- resource quantities parse; requests are at most limits; extended resources
  (`nvidia.com/gpu`) need a limit and requests equal to it;
- probe ports given by name are declared by the container (the kubelet fails
  the probe on an unknown name: accepted, never healthy).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from llmgen.catalog.load import PathKey
from llmgen.errors import Diagnostic
from llmgen.verify.manifests import Manifest
from llmgen.verify.quantity import parse_quantity
from llmgen.verify.stats import Family

_IANA = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
_ENV_STRICT = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
_ENV_RELAXED = re.compile(r"[ -<>-~]+")  # printable ASCII except '='
_NATIVE_PREFIXES = ("kubernetes.io/", "requests.")
_STANDARD = {"cpu", "memory", "ephemeral-storage", "storage"}
_POD_TEMPLATE_KINDS = {
    ("apps", "Deployment"),
    ("apps", "DaemonSet"),
    ("apps", "StatefulSet"),
    ("apps", "ReplicaSet"),
    ("batch", "Job"),
}
_PROBES = ("startupProbe", "readinessProbe", "livenessProbe")


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def pod_spec(m: Manifest) -> tuple[PathKey, dict[str, Any]] | None:
    """The pod spec a workload runs and its path, or None for other kinds."""
    group = m.api_version.rpartition("/")[0]
    spec = _dict(m.data.get("spec")) if isinstance(m.data, dict) else {}
    if (group, m.kind) in _POD_TEMPLATE_KINDS:
        return ("spec", "template", "spec"), _dict(_dict(spec.get("template")).get("spec"))
    if (group, m.kind) == ("batch", "CronJob"):
        job = _dict(_dict(spec.get("jobTemplate")).get("spec"))
        return ("spec", "jobTemplate", "spec", "template", "spec"), _dict(
            _dict(job.get("template")).get("spec")
        )
    if (group, m.kind) == ("", "Pod"):
        return ("spec",), spec
    return None


def containers(spec: dict[str, Any]) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """(field, index, container) for init containers, then containers."""
    for field in ("initContainers", "containers"):
        for index, container in enumerate(_list(spec.get(field))):
            if isinstance(container, dict):
                yield field, index, container


def selector_matches(selector: dict[str, Any], labels: dict[str, Any]) -> bool:
    """Whether a LabelSelector (matchLabels + matchExpressions) selects `labels`."""
    for key, value in _dict(selector.get("matchLabels")).items():
        if labels.get(key) != value:
            return False
    for expr in _list(selector.get("matchExpressions")):
        expr = _dict(expr)
        key, op, values = str(expr.get("key")), expr.get("operator"), _list(expr.get("values"))
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def iana_problem(name: str) -> str | None:
    if len(name) > 15:
        return f'"{name}" is not a valid port name: at most 15 characters'
    if not _IANA.fullmatch(name) or "--" in name:
        return (
            f"\"{name}\" is not a valid port name: lower-case letters, digits and '-' "
            "(not at either end, never '--')"
        )
    if not any(c.isalpha() for c in name):
        return f'"{name}" is not a valid port name: it needs at least one letter'
    return None


def env_name_ok(name: str, kubernetes_version: tuple[int, int]) -> bool:
    pattern = _ENV_RELAXED if kubernetes_version >= (1, 32) else _ENV_STRICT
    return pattern.fullmatch(name) is not None


def check_apiserver(
    m: Manifest, family: Family, kubernetes_version: tuple[int, int] = (1, 33)
) -> list[Diagnostic]:
    """The API server's own validation of a workload or Service, beyond the schema."""
    if not isinstance(m.data, dict):
        return []
    out: list[Diagnostic] = []
    if m.kind == "Service" and m.api_version == "v1":
        out += _service(m, family)
    found = pod_spec(m)
    if found is None:
        return out + _lws_pods(m, family, kubernetes_version)
    base, spec = found
    family.run += 1
    if base[:2] == ("spec", "template") or base[:2] == ("spec", "jobTemplate"):
        out += _selector(m, base)
    out += _pod(m, base, spec, kubernetes_version)
    family.failed += 1 if out else 0
    return out


def _lws_pods(m: Manifest, family: Family, version: tuple[int, int]) -> list[Diagnostic]:
    """A LeaderWorkerSet's pod templates: the API server validates them only when
    the LWS controller creates their StatefulSets, so a mistake there surfaces
    as a controller error at run time; checked here as for any pod template."""
    if (m.api_version, m.kind) != ("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet"):
        return []
    out: list[Diagnostic] = []
    lwt = _dict(_dict(m.data.get("spec")).get("leaderWorkerTemplate"))
    for role in ("leaderTemplate", "workerTemplate"):
        template = _dict(lwt.get(role))
        if not template:
            continue
        family.run += 1
        found = _pod(
            m, ("spec", "leaderWorkerTemplate", role, "spec"), _dict(template.get("spec")), version
        )
        family.failed += 1 if found else 0
        out += found
    return out


def _selector(m: Manifest, base: PathKey) -> list[Diagnostic]:
    if m.kind in ("Job", "CronJob"):
        return []  # the Job controller generates the selector
    spec = _dict(m.data.get("spec"))
    selector = _dict(spec.get("selector"))
    template = base[:-1]
    labels = _dict(_dict(_dict(spec.get("template")).get("metadata")).get("labels"))
    if not selector.get("matchLabels") and not selector.get("matchExpressions"):
        return [m.diagnostic(("spec", "selector"), f"empty selector is invalid for a {m.kind}")]
    if not selector_matches(selector, labels):
        return [
            m.diagnostic(
                (*template, "metadata", "labels"),
                "selector does not match template labels (spec.selector)",
            )
        ]
    return []


def _pod(
    m: Manifest, base: PathKey, spec: dict[str, Any], version: tuple[int, int]
) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    volumes: set[str] = set()
    for index, volume in enumerate(_list(spec.get("volumes"))):
        name = _dict(volume).get("name")
        if name in volumes:
            out.append(
                m.diagnostic((*base, "volumes", index, "name"), f'duplicate volume "{name}"')
            )
        if isinstance(name, str):
            volumes.add(name)
    names: set[str] = set()
    for field, index, container in containers(spec):
        where: PathKey = (*base, field, index)
        name = container.get("name")
        if name in names:
            out.append(m.diagnostic((*where, "name"), f'duplicate container name "{name}"'))
        if isinstance(name, str):
            names.add(name)
        out += _ports(m, where, container)
        for v, mount in enumerate(_list(container.get("volumeMounts"))):
            mount_name = _dict(mount).get("name")
            if isinstance(mount_name, str) and mount_name not in volumes:
                out.append(
                    m.diagnostic(
                        (*where, "volumeMounts", v, "name"),
                        f'volumeMount "{mount_name}" names no volume of the pod',
                    )
                )
        for e, env in enumerate(_list(container.get("env"))):
            env_name = _dict(env).get("name")
            if isinstance(env_name, str) and not env_name_ok(env_name, version):
                rule = (
                    "printable ASCII characters except '='"
                    if version >= (1, 32)
                    else "letters, digits, '_', '-' and '.', not starting with a digit"
                )
                out.append(
                    m.diagnostic(
                        (*where, "env", e, "name"),
                        f'"{env_name}" is not a valid environment variable name in Kubernetes '
                        f"{version[0]}.{version[1]}: {rule}",
                    )
                )
        out += _resources(m, (*where, "resources"), _dict(container.get("resources")))
    return out


def _ports(m: Manifest, where: PathKey, container: dict[str, Any]) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    declared: set[str] = set()
    seen: set[tuple[Any, Any]] = set()
    for p, port in enumerate(_list(container.get("ports"))):
        port = _dict(port)
        name = port.get("name")
        if isinstance(name, str):
            problem = iana_problem(name)
            if problem:
                out.append(m.diagnostic((*where, "ports", p, "name"), problem))
            if name in declared:
                out.append(
                    m.diagnostic((*where, "ports", p, "name"), f'duplicate port name "{name}"')
                )
            declared.add(name)
        key = (port.get("containerPort"), port.get("protocol", "TCP"))
        if key in seen:
            out.append(
                m.diagnostic(
                    (*where, "ports", p, "containerPort"),
                    f"duplicate port {key[0]}/{key[1]} in this container",
                )
            )
        seen.add(key)
    for probe_name in _PROBES:
        probe = _dict(container.get(probe_name))
        for handler in ("httpGet", "tcpSocket", "grpc"):
            port = _dict(probe.get(handler)).get("port")
            if isinstance(port, str) and port not in declared:
                out.append(
                    m.diagnostic(
                        (*where, probe_name, handler, "port"),
                        f'port "{port}" is not declared by container '
                        f'"{container.get("name")}"; the kubelet cannot run this probe',
                    )
                )
    return out


def _resources(m: Manifest, where: PathKey, resources: dict[str, Any]) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    parsed: dict[str, dict[str, Any]] = {}
    for kind in ("requests", "limits"):
        parsed[kind] = {}
        for name, value in _dict(resources.get(kind)).items():
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                continue  # the schema reports a value that is not a quantity at all
            amount = parse_quantity(value)
            if amount is None:
                out.append(
                    m.diagnostic((*where, kind, name), f'"{value}" is not a resource quantity')
                )
            else:
                parsed[kind][name] = amount
    requests, limits = parsed["requests"], parsed["limits"]
    for name, request in requests.items():
        limit = limits.get(name)
        extended = name not in _STANDARD and not name.startswith(("hugepages-",))
        if extended and "/" in name and not name.startswith(_NATIVE_PREFIXES):
            if limit is None:
                out.append(
                    m.diagnostic(
                        (*where, "requests", name),
                        f"{name} is not overcommitable: it needs a limit equal to the request",
                    )
                )
            elif limit != request:
                out.append(
                    m.diagnostic(
                        (*where, "requests", name),
                        f"{name} is not overcommitable: the request must equal the limit",
                    )
                )
            continue
        if limit is not None and request > limit:
            out.append(
                m.diagnostic(
                    (*where, "requests", name),
                    f"must be less than or equal to {name} limit of {resources['limits'][name]}",
                )
            )
    return out


def _service(m: Manifest, family: Family) -> list[Diagnostic]:
    spec = _dict(m.data.get("spec"))
    ports = _list(spec.get("ports"))
    family.run += 1
    out: list[Diagnostic] = []
    names: set[Any] = set()
    seen: set[tuple[Any, Any]] = set()
    for p, port in enumerate(ports):
        port = _dict(port)
        name = port.get("name")
        if len(ports) > 1 and not name:
            out.append(
                m.diagnostic(("spec", "ports", p), "a Service with several ports must name each")
            )
        if name and name in names:
            out.append(m.diagnostic(("spec", "ports", p, "name"), f'duplicate port name "{name}"'))
        names.add(name)
        key = (port.get("port"), port.get("protocol", "TCP"))
        if key in seen:
            out.append(
                m.diagnostic(("spec", "ports", p, "port"), f"duplicate port {key[0]}/{key[1]}")
            )
        seen.add(key)
        target = port.get("targetPort")
        if isinstance(target, str):
            problem = iana_problem(target)
            if problem:
                out.append(m.diagnostic(("spec", "ports", p, "targetPort"), problem))
    family.failed += 1 if out else 0
    return out
