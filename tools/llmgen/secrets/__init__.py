"""secrets: `llmgen secrets check`, reading every referenced secret from its
backend (Vault/OpenBao, AWS Secrets Manager, GCP Secret Manager) through the
vendors' SDKs (`readers`) and reporting only key names (`check`). Store naming
itself lives in `catalog.secret_backends`, below render. It may import render,
plan, catalog and the foundation modules; only cli imports it.
"""

from __future__ import annotations
