"""Cloud identities derived from names: within the cloud's limits, never shared.

Truncating to the limit gave `…-finetune-a` and `…-finetune-b` one Google
service account, and three models with a long common prefix one AWS role: each
could then act as the others. Names that fit are kept as they are, so the
IAM bindings of existing models do not move.
"""

from __future__ import annotations

import re
from pathlib import Path

from llmgen.catalog import names
from llmgen.catalog.load import load_catalog
from llmgen.catalog.model import Catalog
from llmgen.clouds import get_provider

REPO = Path(__file__).resolve().parents[1]
# GCP: "The ID must be between 6 and 30 characters" and match this
# (IAM API, projects.serviceAccounts.create, accountId).
GSA_ID = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])")
# AWS IAM CreateRole: RoleName is 1..64 characters of [\w+=,.@-].
ROLE_NAME = re.compile(r"[\w+=,.@-]{1,64}")

LONG = "llama-3-3-70b-instruct-customer-support-finetune"
NEAR_IDENTICAL = [
    f"{LONG}-a",
    f"{LONG}-b",
    f"{LONG}-c",
    f"{LONG}-v2-a",
    "qwen",  # under GCP's 6-character minimum
    "phi-3",
]


def _identities() -> tuple[dict[str, str], dict[str, str]]:
    docs, _ = load_catalog(REPO)
    cat = Catalog.build(docs)
    aws = next(c for c in cat.clusters.values() if c.cloud == "aws")
    gcp = next(c for c in cat.clusters.values() if c.cloud == "gcp")
    roles, gsas = {}, {}
    for model in NEAR_IDENTICAL:
        ns = names.model_namespace(model)
        arn = get_provider("aws").workload_identity_annotations(aws, ns, model)
        roles[model] = arn["eks.amazonaws.com/role-arn"].rsplit("/", 1)[1]
        email = get_provider("gcp").workload_identity_annotations(gcp, ns, model)
        gsas[model] = email["iam.gke.io/gcp-service-account"].split("@", 1)[0]
    return roles, gsas


def test_near_identical_long_names_get_distinct_identities() -> None:
    roles, gsas = _identities()
    assert len(set(roles.values())) == len(NEAR_IDENTICAL), roles
    assert len(set(gsas.values())) == len(NEAR_IDENTICAL), gsas


def test_identities_keep_within_the_cloud_limits() -> None:
    roles, gsas = _identities()
    for model, gsa in gsas.items():
        assert 6 <= len(gsa) <= 30 and GSA_ID.fullmatch(gsa), (model, gsa)
    for model, role in roles.items():
        assert ROLE_NAME.fullmatch(role), (model, role)


def test_names_that_fit_are_unchanged() -> None:
    # Existing bindings stay put: only names over the limit (or under GCP's minimum) move.
    assert names.short_identity("phi-3-mini", 30, 6) == "phi-3-mini"
    assert names.short_identity("prod-aws-use1-bge-m3", 64) == "prod-aws-use1-bge-m3"
    shortened = names.short_identity(f"{LONG}-a", 30, 6)
    assert shortened.startswith(LONG[:21]) and len(shortened) == 30
    assert names.short_identity(f"{LONG}-a", 30, 6) == shortened  # stable
