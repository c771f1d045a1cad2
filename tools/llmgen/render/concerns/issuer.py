"""The cert-manager ClusterIssuer the gateway's Certificate names (`gateway.tls.issuer`).

Into `infrastructure/mesh-identity/gateway/`, beside the Certificate: one ACME
ClusterIssuer per cluster, named after its environment's issuer.

- Server: Let's Encrypt staging when the issuer's name says `staging`
  (untrusted certificates, generous rate limits), production otherwise.
- Account: `Platform.spec.acme.email`, or `platform@<environment domain>`;
  the ACME account key lives in the Secret `<issuer>-account-key` that
  cert-manager creates in its own namespace.
- Solver: DNS-01 only, because the gateway answers port 80 with a redirect
  to HTTPS, where HTTP-01 challenges would never be served. The cloud
  provider decides the DNS API and its ambient credentials (Route 53 through
  IRSA, Cloud DNS through Workload Identity), scoped to the environment's zone.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from llmgen.render.types import Output, file_name

if TYPE_CHECKING:
    from llmgen.render.concerns.istio import MeshView

CONFIGS = "infrastructure/mesh-identity/gateway"
LETSENCRYPT_PRODUCTION = "https://acme-v02.api.letsencrypt.org/directory"
LETSENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"


def acme_server(issuer: str) -> str:
    """The ACME directory an issuer of this name talks to."""
    return LETSENCRYPT_STAGING if "staging" in issuer else LETSENCRYPT_PRODUCTION


def account_email(mv: MeshView) -> str:
    return mv.cp.platform.acme_email or f"platform@{mv.environment.domain}"


#: Route 53 is a global service; its API is signed for us-east-1.
ROUTE53_REGION = "us-east-1"
#: The token audience AWS STS accepts for web-identity federation.
STS_AUDIENCE = "sts.amazonaws.com"
#: cert-manager's identity toward Route 53 on clusters outside AWS.
ACME_SERVICE_ACCOUNT = "cert-manager-acme-route53"
CERT_MANAGER_NAMESPACE = "cert-manager"


def route53_role(mv: MeshView, service_account: str) -> str:
    """The IAM role in the zone's account a cluster outside AWS assumes by web identity."""
    assert mv.environment.dns is not None
    return f"arn:aws:iam::{mv.environment.dns.account_id}:role/{mv.cp.name}-{service_account}"


def dns01_solver(mv: MeshView) -> dict[str, Any]:
    """DNS-01 against the environment's one authority (`spec.dns`), from every cluster.

    cert-manager finds the zone by SOA lookup, so the challenge must go to the
    service that is authoritative for the domain: with Route 53 named, GKE
    clusters write there too, as a web identity (cert-manager 1.19
    `route53.auth.kubernetes.serviceAccountRef`: a token of that
    ServiceAccount, audience sts.amazonaws.com, exchanged for `role`).
    """
    env, cp = mv.environment, mv.cp
    if env.dns is None:
        return cp.provider.acme_dns01_solver(cp.cluster, env.domain)
    route53: dict[str, Any] = {"region": ROUTE53_REGION, "hostedZoneID": env.dns.zone_id}
    if cp.cluster.cloud != "aws":
        route53["role"] = route53_role(mv, "cert-manager")
        route53["auth"] = {
            "kubernetes": {
                "serviceAccountRef": {"name": ACME_SERVICE_ACCOUNT, "audiences": [STS_AUDIENCE]}
            }
        }
    return {"route53": route53}


def cluster_issuer_context(mv: MeshView) -> dict[str, Any]:
    env, cp = mv.environment, mv.cp
    name = env.tls_issuer
    solver = {
        # Only names under the environment's domain: the zone llmgen manages.
        "selector": {"dnsZones": [env.domain]},
        "dns01": dns01_solver(mv),
    }
    return {
        "name": name,
        "labels": cp.labels,
        "server": acme_server(name),
        "email": account_email(mv),
        "account_key_secret": f"{name}-account-key",
        "solvers": [solver],
    }


def web_identity_outputs(mv: MeshView) -> Iterator[Output]:
    """The ServiceAccount cert-manager requests Route 53 tokens for, and its right to."""
    cp = mv.cp
    yield Output(
        f"{CONFIGS}/{file_name('ServiceAccount', ACME_SERVICE_ACCOUNT)}",
        "mesh/serviceaccount-mesh-secrets.yaml.j2",
        {
            "name": ACME_SERVICE_ACCOUNT,
            "namespace": CERT_MANAGER_NAMESPACE,
            "labels": cp.labels,
            "annotations": {},
        },
        cp.input_hash,
    )
    # cert-manager's controller creates tokens for that one ServiceAccount only.
    yield Output(
        f"{CONFIGS}/{file_name('Role', ACME_SERVICE_ACCOUNT)}",
        "dns/role.yaml.j2",
        {
            "name": ACME_SERVICE_ACCOUNT,
            "namespace": CERT_MANAGER_NAMESPACE,
            "labels": cp.labels,
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["serviceaccounts/token"],
                    "resourceNames": [ACME_SERVICE_ACCOUNT],
                    "verbs": ["create"],
                }
            ],
        },
        cp.input_hash,
    )
    yield Output(
        f"{CONFIGS}/{file_name('RoleBinding', ACME_SERVICE_ACCOUNT)}",
        "dns/rolebinding.yaml.j2",
        {
            "name": ACME_SERVICE_ACCOUNT,
            "namespace": CERT_MANAGER_NAMESPACE,
            "labels": cp.labels,
            "role": ACME_SERVICE_ACCOUNT,
            "subjects": [
                {
                    "kind": "ServiceAccount",
                    "name": "cert-manager",
                    "namespace": CERT_MANAGER_NAMESPACE,
                }
            ],
        },
        cp.input_hash,
    )


def outputs(mv: MeshView) -> Iterator[Output]:
    if mv.environment.dns is not None and mv.cp.cluster.cloud != "aws":
        yield from web_identity_outputs(mv)
    ctx = cluster_issuer_context(mv)
    yield Output(
        f"{CONFIGS}/{file_name('ClusterIssuer', ctx['name'])}",
        "mesh/clusterissuer.yaml.j2",
        ctx,
        mv.cp.input_hash,
    )
