"""Measure llmgen on a synthetic catalog and print the figures DESIGN.md asks for.

One run generates the catalog (gencatalog.py), then measures, each stage in
its own child process pinned to one core (so peak RSS is per stage and the
figures do not depend on the machine's core count):

- validate: load + schema + cross-document rules
- cold render: validate + plan + render + write into an empty tree, no cache
- no-op render: the same command again with nothing changed
- the PyYAML C-dumper baseline: `yaml.dump(doc, Dumper=CSafeDumper)` of every
  document the render produced (parsed back first, not timed)
- verify: every check but kustomize builds (schemas, CRD CEL rules, API
  server rules, Flux references, wiring across resources and layers, the
  credential guard), with the catalog's cluster facts; kustomize separately

Times exclude interpreter start-up and imports; each is the best of --repeat
runs. Nothing is asserted: the script prints figures and their ratios.

    python tools/bench/benchmark.py [--models 200 --clusters 12 --environments 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))

import gencatalog  # noqa: E402


def _pin() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})


def stage(name: str, root: Path, crds: Path | None) -> dict[str, float]:
    """Run one stage in this process and return its figures."""
    _pin()
    if name == "validate":
        from llmgen.catalog.validate import validate

        t = time.perf_counter()
        result = validate(root)
        dt = time.perf_counter() - t
        if not result.ok:
            raise SystemExit(
                "benchmark catalog does not validate:\n"
                + "\n".join(map(str, result.diagnostics[:20]))
            )
        return {"seconds": dt, "documents": len(result.documents)}
    if name in ("render", "noop"):
        from llmgen.render import pipeline

        t = time.perf_counter()
        out = pipeline.render(root)
        dt = time.perf_counter() - t
        return {"seconds": dt, "documents": out.documents, "noop": float(out.noop)}
    if name == "dump":
        import yaml
        import yaml_rs

        docs = []
        for path in sorted((root / "generated").rglob("*.yaml")):
            if path.name == "kustomization.yaml":
                continue
            loaded = yaml_rs.loads(path.read_text())
            docs.extend(loaded if isinstance(loaded, list) else [loaded])
        t = time.perf_counter()
        for d in docs:
            yaml.dump(d, Dumper=yaml.CSafeDumper, sort_keys=False)
        return {"seconds": time.perf_counter() - t, "documents": len(docs)}
    if name in ("verify", "kustomize"):
        from llmgen.verify.runner import catalog_facts, verify_tree

        assert crds is not None
        facts = catalog_facts(root)  # read once, like the CLI; not part of the figure
        t = time.perf_counter()
        rep = verify_tree(root, crds, kustomize=name == "kustomize", clusters=facts)
        dt = time.perf_counter() - t
        out: dict[str, float] = {
            "seconds": dt,
            "documents": rep.documents,
            "folders": rep.folders,
            "errors": len(rep.diagnostics),
        }
        for family, f in rep.stats.families.items():
            out[f"{family}.run"] = f.run
            out[f"{family}.skipped"] = f.skipped
            out[f"{family}.failed"] = f.failed
            out[f"{family}.unevaluable"] = sum(f.unevaluable.values())
        return out
    raise SystemExit(f"unknown stage {name}")


def run_child(name: str, root: Path, crds: Path | None) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--stage", name, "--root", str(root)]
    if crds:
        cmd += ["--crd-schemas", str(crds)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"stage {name} failed (status {status})")
    figures: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    figures["peak_rss_mb"] = usage.ru_maxrss / 1024  # Linux reports KiB
    return figures


def best(
    name: str, root: Path, crds: Path | None, repeat: int, reset: bool = False
) -> dict[str, float]:
    runs = []
    for _ in range(repeat):
        if reset:
            import shutil

            shutil.rmtree(root / "generated", ignore_errors=True)
            shutil.rmtree(root / ".llmgen", ignore_errors=True)
        runs.append(run_child(name, root, crds))
    return min(runs, key=lambda r: r["seconds"]) | {
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs)
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--models", type=int, default=200)
    ap.add_argument("--clusters", type=int, default=12)
    ap.add_argument("--environments", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--crd-schemas", type=Path, default=REPO.parent / "shared" / "crd-schemas")
    ap.add_argument("--skip-kustomize", action="store_true", help="Do not time kustomize build.")
    ap.add_argument("--stage", help=argparse.SUPPRESS)
    ap.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.stage:
        print(json.dumps(stage(args.stage, args.root, args.crd_schemas)))
        return

    with tempfile.TemporaryDirectory(prefix="llmgen-bench-") as tmp:
        root = Path(tmp)
        gencatalog.generate(root, args.models, args.clusters, args.environments)
        crds = args.crd_schemas
        v = best("validate", root, crds, args.repeat)
        cold = best("render", root, crds, args.repeat, reset=True)
        noop = best("noop", root, crds, args.repeat)
        dump = best("dump", root, crds, args.repeat)
        ver = best("verify", root, crds, 1)
        kus = None if args.skip_kustomize else best("kustomize", root, crds, 1)

    docs = cold["documents"]
    rows = [
        (
            "catalog",
            f"{args.models} models x {args.clusters} clusters x {args.environments} environments",
        ),
        ("documents rendered", f"{int(docs)}"),
        ("validate", f"{v['seconds']:.3f} s (target <= 1 s)"),
        (
            "cold render",
            f"{cold['seconds']:.2f} s, {cold['seconds'] / docs * 1000:.3f} ms/document",
        ),
        (
            "PyYAML C dumper, same documents",
            f"{dump['seconds']:.2f} s, "
            f"{dump['seconds'] / dump['documents'] * 1000:.3f} ms/document",
        ),
        ("render / dumper ratio", f"{cold['seconds'] / dump['seconds']:.2f} (target <= 1.0)"),
        ("no-op render", f"{noop['seconds']:.3f} s"),
        ("no-op / cold ratio", f"{noop['seconds'] / cold['seconds']:.3f} (target <= 0.1)"),
        (
            "verify (all checks but kustomize, one core)",
            f"{ver['documents'] / ver['seconds']:.0f} documents/s "
            f"over {int(ver['documents'])} (target >= 4000)",
        ),
        (
            "verify checks run/skipped/failed/not evaluable",
            ", ".join(
                f"{fam} {int(ver[f'{fam}.run'])}/{int(ver[f'{fam}.skipped'])}/"
                f"{int(ver[f'{fam}.failed'])}/{int(ver[f'{fam}.unevaluable'])}"
                for fam in sorted({k.split(".")[0] for k in ver if k.endswith(".run")})
            ),
        ),
        ("verify findings", f"{int(ver['errors'])}"),
        (
            "peak RSS",
            f"validate {v['peak_rss_mb']:.0f} MB, render {cold['peak_rss_mb']:.0f} MB, "
            f"verify {ver['peak_rss_mb']:.0f} MB (target <= 300 MB)",
        ),
    ]
    if kus is not None:
        rows.append(
            (
                "kustomize build (all folders, one core)",
                f"{kus['seconds']:.1f} s for {int(kus['folders'])} folders",
            )
        )
    width = max(len(k) for k, _ in rows)
    print(f"llmgen benchmark ({sys.platform}, Python {sys.version.split()[0]})")
    for k, val in rows:
        print(f"  {k.ljust(width)}  {val}")


if __name__ == "__main__":
    main()
