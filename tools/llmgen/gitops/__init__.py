"""gitops: what a change does in git and on the clusters.

It owns comparing trees (`changes`, `diff`), the pull-request summary in
catalog terms (`prsummary`, `prsummaryview`), committing generated/ (`commit`)
and live status through the Kubernetes client (`status`, `statusview`). It may
import render, verify, plan, catalog and the foundation modules; lifecycle and
cli import it.
"""

from __future__ import annotations
