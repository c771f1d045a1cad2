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


def cluster_issuer_context(mv: MeshView) -> dict[str, Any]:
    env, cp = mv.environment, mv.cp
    name = env.tls_issuer
    solver = {
        # Only names under the environment's domain: the zone llmgen manages.
        "selector": {"dnsZones": [env.domain]},
        "dns01": cp.provider.acme_dns01_solver(cp.cluster, env.domain),
    }
    return {
        "name": name,
        "labels": cp.labels,
        "server": acme_server(name),
        "email": account_email(mv),
        "account_key_secret": f"{name}-account-key",
        "solvers": [solver],
    }


def outputs(mv: MeshView) -> Iterator[Output]:
    ctx = cluster_issuer_context(mv)
    yield Output(
        f"{CONFIGS}/{file_name('ClusterIssuer', ctx['name'])}",
        "mesh/clusterissuer.yaml.j2",
        ctx,
        mv.cp.input_hash,
    )
