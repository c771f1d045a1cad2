"""Three-way line merge: replay a ruamel.yaml edit onto the user's own text.

`merge(orig, base, new)`: `base` is ruamel's rendering of `orig`, `new` its
rendering after an edit. Lines equal in all three are anchors; between two
anchors the user's bytes are kept unless the edit changed that stretch, and
changed lines are re-indented to the user's indentation. Comment lines that
ruamel ties to the previous node stay with the node they introduce (the
next one): inserted lines go above them, and deleting a node keeps them.
The caller checks that the result parses back to the edited tree.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from itertools import pairwise


def _key(line: str) -> str:
    return line.rstrip("\r\n")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _is_blank(line: str) -> bool:
    return not line.strip()


def _is_comment(line: str) -> bool:
    return line.lstrip(" ").startswith("#")


def _first_indent(lines: Sequence[str]) -> int:
    return next((_indent(x) for x in lines if not _is_blank(x)), 0)


class _Merger:
    """Builds the merged text line by line (see `merge`)."""

    def __init__(self, newline: str, fixups: bool) -> None:
        self.out: list[str] = []
        self.newline = newline
        self.fixups = fixups
        # ruamel's indentation -> the user's, learnt from the lines seen so
        # far (the nearest wins), so inserted lines line up with their siblings.
        self.indents: dict[int, int] = {}

    def learn(self, base_line: str, orig_line: str) -> None:
        if not _is_blank(base_line) and not _is_blank(orig_line):
            self.indents[_indent(base_line)] = _indent(orig_line)

    def keep(self, base: Sequence[str], orig: Sequence[str]) -> None:
        """Lines the edit did not touch: the user's bytes."""
        if len(base) == len(orig):
            for b, o in zip(base, orig, strict=True):
                self.learn(b, o)
        self.out.extend(orig)

    def reindent(self, line: str) -> str:
        if not self.fixups or _is_blank(line):
            return line
        have = _indent(line)
        want = self.indents.get(have, have)
        return " " * want + line[have:]

    def insert(self, lines: Sequence[str]) -> None:
        """New lines go above blank or shallower comment lines that end `out`.

        ruamel emits a new node after the previous node's trailing comments,
        which in the user's file introduce whatever follows; the new lines
        belong above them.
        """
        lines = [self.reindent(x) for x in lines]
        at = len(self.out)
        if self.fixups:
            ind = _first_indent(lines)
            while at > 0 and (
                _is_blank(self.out[at - 1])
                or (_is_comment(self.out[at - 1]) and _indent(self.out[at - 1]) <= ind)
            ):
                at -= 1
        self.out[at:at] = lines

    def delete(self, removed: Sequence[str]) -> None:
        """Drop a node; keep the comments after it, which introduce the next one.

        Comment lines right above the node, at its indentation, describe it
        and go with it.
        """
        if not self.fixups or not removed:
            return
        ind = _first_indent(removed)
        while self.out and _is_comment(self.out[-1]) and _indent(self.out[-1]) == ind:
            self.out.pop()
        start = len(removed)
        while start > 0 and (
            _is_blank(removed[start - 1])
            or (_is_comment(removed[start - 1]) and _indent(removed[start - 1]) <= ind)
        ):
            start -= 1
        tail = list(removed[start:])
        if any(_is_comment(x) for x in tail):
            self.out.extend(tail)

    def replace(self, base: Sequence[str], orig: Sequence[str], new: Sequence[str]) -> None:
        if len(base) == len(orig) == len(new) and self.fixups:
            for b, o, n in zip(base, orig, new, strict=True):
                shift = _indent(o) - _indent(b)
                self.out.append(" " * max(0, _indent(n) + shift) + n.lstrip(" "))
                self.learn(b, o)
        else:
            self.out.extend(self.reindent(x) for x in new)

    def gap(self, seg_b: list[str], seg_o: list[str], seg_n: list[str]) -> None:
        """One stretch between anchors: base, orig and new lines."""
        nk = [_key(x) for x in seg_n]
        if seg_b == nk:
            self.keep(seg_b, seg_o)
            return
        if len(seg_b) != len(seg_o) or not self.fixups:
            # No line-by-line correspondence with the user's text: take the
            # stretch as ruamel renders it after the edit.
            if not seg_b:
                self.keep(seg_b, seg_o)
                self.insert(seg_n)
            elif not seg_n:
                self.delete(seg_o)
            else:
                self.replace(seg_b, seg_o, seg_n)
            return
        # Lines correspond one to one (ruamel only re-spaced them): replay the
        # edit inside the stretch, keeping every line it does not touch.
        matcher = difflib.SequenceMatcher(None, seg_b, nk, autojunk=False)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag == "equal":
                self.keep(seg_b[i1:i2], seg_o[i1:i2])
            elif tag == "insert":
                self.insert(seg_n[j1:j2])
            elif tag == "delete":
                self.delete(seg_o[i1:i2])
            else:
                self.replace(seg_b[i1:i2], seg_o[i1:i2], seg_n[j1:j2])


def merge(orig: str, base: str, new: str, *, fixups: bool = True) -> str:
    """Replay the change base → new onto `orig`, keeping orig's bytes elsewhere.

    `base` is ruamel's rendering of `orig` and `new` its rendering after the
    edit. Lines equal in all three are anchors; each stretch between anchors
    comes from orig where the edit left it alone, else from new (re-indented
    to the user's indentation). Without `fixups`, new lines are taken
    exactly as ruamel renders them and comments stay where ruamel puts them.
    """
    o = orig.splitlines(keepends=True)
    b = base.splitlines(keepends=True)
    newline = "\r\n" if orig.count("\r\n") * 2 > orig.count("\n") else "\n"
    if o and not o[-1].endswith(("\n", "\r")):
        o[-1] += newline  # restored below
    n = [_key(x) + newline for x in new.splitlines()]
    ok, bk, nk = [_key(x) for x in o], [_key(x) for x in b], [_key(x) for x in n]
    to_orig = _matches(bk, ok)
    to_new = _matches(bk, nk)
    anchors = [(i, to_orig[i], to_new[i]) for i in range(len(b)) if i in to_orig and i in to_new]
    bounds = [(-1, -1, -1), *anchors, (len(b), len(o), len(n))]
    m = _Merger(newline, fixups)
    for (pb, po, pn), (qb, qo, qn) in pairwise(bounds):
        if pb >= 0:
            m.keep([bk[pb]], [o[po]])
        m.gap(bk[pb + 1 : qb], o[po + 1 : qo], n[pn + 1 : qn])
    text = "".join(m.out)
    if orig and not orig.endswith(("\n", "\r")) and text.endswith(newline):
        text = text[: -len(newline)]
    return text


def _matches(a: list[str], b: list[str]) -> dict[int, int]:
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    found: dict[int, int] = {}
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            found[block.a + k] = block.b + k
    return found
