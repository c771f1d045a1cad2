"""Each unit's triggers and formula, compiled once and evaluated for all units per step.

Units whose trigger queries (or formulas) have the same shape share one
compiled evaluator; their numbers are lifted into per-unit constant rows
(`promsignals`, `exprlang`), so a catalog of hundreds of models evaluates a
handful of expressions per step.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from . import exprlang, promsignals
from .setup import SetupError, Unit

Array = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]
# Label values select the model's own series; only these two change what a query counts.
_LABEL_VALUE = re.compile(
    r'\b(?!reporter\b|response_code\b)([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"'
)


def _groups(keys: list[str]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        out.setdefault(k, []).append(i)
    return out


class Scalers:
    """The KEDA side of every unit: trigger values, errors and the formula."""

    def __init__(self, units: list[Unit]) -> None:
        self.units = units
        self.n = len(units)
        #: the simulated signals some query reads (the engine computes only these)
        self.reads: set[str] = {"one", "true"}
        self._compile_triggers()
        self._compile_formulas()

    def _compile_triggers(self) -> None:
        names = sorted({t.name for u in self.units for t in u.so.triggers})
        self.trigger_names = names
        self.has = np.zeros((len(names), self.n), dtype=bool)
        self.ignore = np.ones((len(names), self.n), dtype=bool)
        self.trigger_groups: list[
            tuple[int, npt.NDArray[np.int64], promsignals.Query, dict[str, Array]]
        ] = []
        by_key: dict[tuple[int, str], tuple[promsignals.Query, list[int], list[tuple[float, ...]]]]
        by_key = {}
        cache: dict[str, promsignals.Query] = {}
        for u in self.units:
            for t in u.so.triggers:
                row = names.index(t.name)
                self.has[row, u.index] = True
                self.ignore[row, u.index] = t.ignore_nulls
                key = _LABEL_VALUE.sub(r'\1\2"x"', t.query)
                q = cache.get(key)
                if q is None:
                    try:
                        q = cache[key] = promsignals.compile_query(t.query)
                    except promsignals.QueryError as exc:
                        raise SetupError(
                            f"{u.so.path}: ScaledObject {u.so.name}: trigger {t.name}: {exc}"
                        ) from None
                self.reads |= q.reads
                entry = by_key.setdefault((row, q.shape), (q, [], []))
                entry[1].append(u.index)
                entry[2].append(q.constants)
        for (row, _shape), (q, idx, consts) in sorted(by_key.items(), key=lambda kv: kv[0]):
            cols = np.array(consts, dtype=np.float64).reshape(len(idx), -1)
            full = {}
            for j in range(cols.shape[1]):
                arr = np.zeros(self.n)
                arr[idx] = cols[:, j]
                full[f"#{j}"] = arr
            self.trigger_groups.append((row, np.array(idx, dtype=np.int64), q, full))

    def _compile_formulas(self) -> None:
        parsed = []
        for u in self.units:
            try:
                parsed.append(exprlang.parse_cached(u.so.formula))
            except exprlang.FormulaError as exc:
                raise SetupError(f"{u.so.path}: ScaledObject {u.so.name}: formula: {exc}") from None
            unknown = parsed[-1].names - {t.name for t in u.so.triggers}
            if unknown:
                raise SetupError(
                    f"{u.so.path}: ScaledObject {u.so.name}: formula names "
                    f"{', '.join(sorted(unknown))}, which no trigger defines"
                )
        self.formula_groups = []
        for _shape, idx in sorted(_groups([f.shape for f in parsed]).items()):
            f = parsed[idx[0]]
            consts = np.zeros((len(f.constants), self.n))
            for i in idx:
                consts[:, i] = parsed[i].constants
            self.formula_groups.append(
                (np.array(idx, dtype=np.int64), exprlang.compile_tree(f.tree), consts)
            )

    def evaluate(self, signals: Mapping[str, Array]) -> tuple[Array, npt.NDArray[np.bool_]]:
        """The composite metric (milli-unit precision) and each trigger's error, per unit."""
        names = self.trigger_names
        values = np.zeros((len(names), self.n))
        errors = np.zeros((len(names), self.n), dtype=bool)
        s = dict(signals)
        with np.errstate(divide="ignore", invalid="ignore"):
            for row, idx, q, consts in self.trigger_groups:
                s.update(consts)
                val, err = q.run(s, self.n, self.ignore[row])
                values[row, idx] = val[idx]
                errors[row, idx] = err[idx]
            composite = np.zeros(self.n)
            env = {name: values[i] for i, name in enumerate(names)}
            for idx, formula, fconsts in self.formula_groups:
                composite[idx] = np.asarray(formula(env, fconsts), dtype=np.float64)[idx]
        # KEDA sets the composite with SetMilli(int64(v * 1000)).
        composite = np.where(np.isfinite(composite), np.trunc(composite * 1000.0) / 1000.0, 0.0)
        return composite, errors & self.has
