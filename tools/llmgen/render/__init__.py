"""render: turn the plan into files, and write them.

It owns the sandboxed jinja2 engine (`engine`), what concerns hand it
(`types.Output`, the Flux layers), the YAML scalar emitter (`yamltext`), the
concerns that decide each resource (`concerns/`), the atomic tree write and
no-op cache (`write`), and the library entry points that run load, validate,
plan and render in order (`pipeline`). It may import `plan`, `clouds`,
`catalog` and the foundation modules; verify, gitops, secrets, lifecycle and
cli import it.
"""

from __future__ import annotations
