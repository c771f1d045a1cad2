"""lifecycle: the verbs that edit the catalog for people.

It owns format-preserving YAML edits (`edit`, with `linemerge` replaying
ruamel's change onto the user's own bytes), the verbs (`verbs`: deploy,
undeploy, stop, start, model new), their optional commits (`commit`), and
`llmgen init` (`scaffold/`). It may import gitops, render, plan, catalog and
the foundation modules; only cli imports it.
"""

from __future__ import annotations
