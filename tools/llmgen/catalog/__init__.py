"""catalog: the first stage, everything about the YAML people edit.

It owns loading with line and column positions (`load`), the JSON Schemas and
their messages (`validate`, `schema_messages`, `hints`), the typed model
(`model`: Catalog, Cluster, Environment, Model, ...), derived names (`names`),
cost and GPU-memory arithmetic (`cost`), secret-store naming
(`secret_backends`), the credential guard (`guard`, used by validate, render
and verify alike), and the cross-document rules (`rulekit`, `rules`,
`rules_capacity`, `rules_policy`). It imports only `llmgen.errors` and
`llmgen.resources`; every other stage imports it.
"""

from __future__ import annotations
