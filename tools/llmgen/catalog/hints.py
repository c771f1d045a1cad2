"""'Did you mean' suggestions for misspelt keys and references."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def suggest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate `word` was probably meant to be, or None.

    Case-insensitive equality wins, then a prefix relation (`H100` for
    `H100-80GB`, which plain edit distance would rank below `H200`), then
    difflib's closest match.
    """
    options = sorted(set(candidates))
    lowered = word.lower()
    for c in options:
        if c.lower() == lowered:
            return c
    # Very short words are prefixes of too much to mean anything.
    related = [
        c
        for c in options
        if min(len(c), len(word)) >= 3
        and (c.lower().startswith(lowered) or lowered.startswith(c.lower()))
    ]
    if related:
        return min(related, key=lambda c: (abs(len(c) - len(word)), c))
    matches = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """'; did you mean 'x'?' or nothing, for appending to a message."""
    hint = suggest(word, candidates)
    return f"; did you mean {hint!r}?" if hint else ""
