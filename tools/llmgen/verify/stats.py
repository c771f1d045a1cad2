"""What verify checked, per family of checks: run, skipped, failed, not evaluable."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Family:
    """Counters of one check family (`schema`, `cel`, `apiserver`, `wiring`, ...)."""

    run: int = 0
    skipped: int = 0
    failed: int = 0
    # Checks that could not be evaluated (never counted as passed), by reason.
    unevaluable: dict[str, int] = field(default_factory=dict)

    def cannot(self, reason: str, count: int = 1) -> None:
        self.unevaluable[reason] = self.unevaluable.get(reason, 0) + count


@dataclass
class CheckStats:
    families: dict[str, Family] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Family:
        family = self.families.get(name)
        if family is None:
            family = self.families[name] = Family()
        return family

    def merge(self, other: CheckStats) -> None:
        for name, theirs in other.families.items():
            mine = self[name]
            mine.run += theirs.run
            mine.skipped += theirs.skipped
            mine.failed += theirs.failed
            for reason, count in theirs.unevaluable.items():
                mine.cannot(reason, count)

    def lines(self) -> list[str]:
        """One summary line per family, then one per reason a check could not run."""
        out: list[str] = []
        for name in sorted(self.families):
            f = self.families[name]
            cannot = sum(f.unevaluable.values())
            line = f"{name}: {f.run} run, {f.skipped} skipped, {f.failed} failed"
            out.append(line + (f", {cannot} not evaluable" if cannot else ""))
            for reason in sorted(f.unevaluable):
                out.append(f"  not evaluable ({f.unevaluable[reason]}x): {reason}")
        return out
