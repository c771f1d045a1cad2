"""Edit catalog files the way a careful person would: only the lines that change.

Lifecycle commands (`deploy`, `stop`, ...) change the user's YAML files, which
carry comments, blank lines, quoting, flow maps and their own indentation.
A plain ruamel.yaml round trip keeps most of that but still re-indents,
re-spaces flow collections and moves comments that sit between list items.
So an edit is done in two steps:

1. the change is applied to a ruamel.yaml round-trip tree, and the tree is
   dumped before (`base`) and after (`new`) the change;
2. the difference base → new is replayed onto the original text by a
   three-way line merge (`linemerge.py`): lines that ruamel printed
   identically in all three are anchors, and between two anchors the user's
   own bytes are kept unless the edit changed that stretch.

The merged text is parsed again and must equal the edited tree, otherwise the
edit is refused as a bug rather than written.

`apply_edits` then checks the whole catalog, edited, in a temporary copy and
only if it validates replaces the real files atomically (write, fsync,
rename). Nothing here prints.
"""

from __future__ import annotations

import difflib
import io
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarbool import ScalarBoolean

from llmgen.catalog.load import outside_links
from llmgen.errors import CatalogError, Diagnostic, LlmgenError, SourceLocation
from llmgen.lifecycle import yamlsafe
from llmgen.lifecycle.linemerge import merge

Mutator = Callable[[CommentedMap], None]

#: The indentation llmgen writes when a file gives no hint (the shipped catalog's).
DEFAULT_INDENT = (2, 4, 2)  # mapping, sequence, dash offset


class EditError(LlmgenError):
    """An edit could not be applied without reformatting the user's file (a bug)."""

    exit_code = 3


@dataclass(frozen=True)
class FileEdit:
    """One file's content before and after; `before` is None for a new file."""

    path: str  # relative to the repo root, forward slashes
    before: str | None
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def diff(self) -> str:
        """A unified diff, as `git diff` would show it."""
        old = (self.before or "").splitlines(keepends=True)
        new = self.after.splitlines(keepends=True)
        return "".join(
            difflib.unified_diff(
                old,
                new,
                fromfile=f"a/{self.path}" if self.before is not None else "/dev/null",
                tofile=f"b/{self.path}",
            )
        )


@dataclass
class Applied:
    """What `apply_edits` did: the edits (written unless dry run) and warnings."""

    edits: list[FileEdit]
    warnings: list[Diagnostic] = field(default_factory=list)
    written: bool = False

    @property
    def changed(self) -> bool:
        return any(e.changed for e in self.edits)

    def diff(self) -> str:
        return "".join(e.diff() for e in self.edits if e.changed)


# ---------------------------------------------------------------- ruamel


def new_yaml(indent: tuple[int, int, int] = DEFAULT_INDENT) -> YAML:
    """A round-trip ruamel.yaml instance that keeps quotes and never wraps lines."""
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 1 << 16
    mapping, sequence, offset = indent
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    return yaml


def dump(yaml: YAML, data: Any) -> str:
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


def _is_block(node: Any) -> bool:
    return not node.fa.flow_style()


def guess_indent(data: Any, lines: Sequence[str]) -> tuple[int, int, int]:
    """The file's own mapping indent, sequence indent and dash offset.

    ruamel.yaml applies one indentation to a whole file; new lines must
    match the user's, so it is measured from the parsed nodes' columns
    (the most common value wins).
    """
    maps: Counter[int] = Counter()
    seqs: Counter[tuple[int, int]] = Counter()

    def walk(node: Any) -> None:
        if isinstance(node, CommentedMap):
            for key, value in node.items():
                if isinstance(value, CommentedMap | CommentedSeq) and value and _is_block(value):
                    parent_col = node.lc.key(key)[1]
                    if isinstance(value, CommentedMap):
                        first = next(iter(value))
                        maps[value.lc.key(first)[1] - parent_col] += 1
                    else:
                        line, col = value.lc.item(0)
                        text = lines[line] if line < len(lines) else ""
                        dash = text.rfind("-", 0, col)
                        if dash >= parent_col:
                            seqs[(col - parent_col, dash - parent_col)] += 1
                walk(value)
        elif isinstance(node, CommentedSeq):
            for item in node:
                walk(item)

    walk(data)
    mapping = maps.most_common(1)[0][0] if maps else DEFAULT_INDENT[0]
    sequence, offset = seqs.most_common(1)[0][0] if seqs else DEFAULT_INDENT[1:]
    if mapping < 1:
        mapping = DEFAULT_INDENT[0]
    if sequence < offset + 2:
        sequence, offset = DEFAULT_INDENT[1:]
    return mapping, sequence, offset


def plain(node: Any) -> Any:
    """ruamel's round-trip types as plain Python data, for comparing trees."""
    if isinstance(node, dict):
        return {str(k): plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v) for v in node]
    if isinstance(node, ScalarBoolean | bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node


# ---------------------------------------------------------------- editing


def load_round_trip(text: str, file: str) -> tuple[YAML, CommentedMap]:
    """Parse a catalog file for editing; the YAML instance matches its indentation."""
    try:
        data = new_yaml().load(text)
    except YAMLError as exc:
        raise CatalogError.single(SourceLocation(file, 1, 1), "", f"cannot edit: {exc}") from None
    if not isinstance(data, CommentedMap):
        raise CatalogError.single(
            SourceLocation(file, 1, 1), "", "cannot edit: the file does not hold a mapping"
        )
    return new_yaml(guess_indent(data, text.splitlines())), data


def edit_text(text: str, mutate: Mutator, file: str = "<text>") -> str:
    """Apply `mutate` to the document in `text`; every line it did not change is kept.

    Raises EditError (a bug) when the result would not parse back to the
    edited tree, for ruamel and for the catalog loader alike (see yamlsafe),
    and CatalogError when the edit would change a shared anchor.
    """
    head, body, tail = yamlsafe.split_markers(text)
    yaml, data = load_round_trip(body, file)
    shared = [(node, plain(node)) for node in yamlsafe.shared_nodes(data)]
    base = dump(yaml, data)
    before = plain(data)
    mutate(data)
    yamlsafe.refuse_shared_edits(shared, plain, file, head.count("\n"))
    yamlsafe.quote_new_strings(data, before)
    new = dump(yaml, data)
    if new == base:
        return text
    want = plain(data)
    for fixups in (True, False):
        merged = merge(body, base, new, fixups=fixups)
        try:
            got = plain(new_yaml().load(merged))
        except YAMLError:
            continue
        if got == want and not yamlsafe.loader_disagrees(merged, want, before, file):
            return head + merged + tail
    raise EditError(f"{file}: could not apply the edit without reformatting the file (a bug)")


def render_new(data: CommentedMap, header: Iterable[str] = ()) -> str:
    """The text of a new catalog file: header comment lines, then the document.

    Every string YAML 1.1 would misread (`no`, `1:30`) is written quoted.
    """
    yamlsafe.quote_new_strings(data, None)
    lines = [f"# {h}".rstrip() + "\n" for h in header]
    return "".join(lines) + dump(new_yaml(), data)


def edit_file(root: Path, rel: str, mutate: Mutator) -> FileEdit:
    """The edit of one existing file under `root` (nothing is written)."""
    before = (root / rel).read_bytes().decode("utf-8")
    return FileEdit(rel, before, edit_text(before, mutate, rel))


# ---------------------------------------------------------------- applying


def _scratch_copy(root: Path, tmp: Path) -> None:
    shutil.copytree(root / "catalog", tmp / "catalog", symlinks=False)
    # overlays/ is copied: a link to the real folder would leave the scratch
    # repository, which validate refuses (check_edits checks the real links).
    if (root / "overlays").is_dir():
        shutil.copytree(root / "overlays", tmp / "overlays", symlinks=False)
    if (root / "schemas").is_dir():
        (tmp / "schemas").symlink_to((root / "schemas").resolve(), target_is_directory=True)


def check_edits(root: Path, edits: Sequence[FileEdit]) -> list[Diagnostic]:
    """Validate the catalog as it would be after `edits`; CatalogError if invalid.

    Returns the warnings about the edited files. The real catalog is not touched: the edits are
    applied to a temporary copy of it.
    """
    from llmgen.plan.check import validate_with_plan

    with tempfile.TemporaryDirectory(prefix="llmgen-edit-") as tmpdir:
        tmp = Path(tmpdir)
        _scratch_copy(root, tmp)
        for e in edits:
            target = tmp / e.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(e.after.encode("utf-8"))
        result, _ = validate_with_plan(tmp)
    links = outside_links(root)
    if links:
        raise CatalogError(
            [Diagnostic(SourceLocation(rel, 1, 1), "", why) for rel, why in sorted(links.items())]
        )
    if not result.ok:
        raise CatalogError(result.diagnostics)
    # Warnings elsewhere in the catalog predate this edit and are not its business.
    touched = {e.path for e in edits}
    return [w for w in result.warnings if w.location.file in touched]


def atomic_write(path: Path, text: str) -> None:
    """Replace `path` with `text` so that readers see the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(text.encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())
        Path(tmp_name).chmod(mode)
        Path(tmp_name).replace(path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def apply_edits(root: Path, edits: Sequence[FileEdit], *, dry_run: bool = False) -> Applied:
    """Validate the edited catalog, then write the changed files atomically.

    If the result does not validate, CatalogError carries every diagnostic
    and no file is written (contents and mtimes stay as they were). With
    `dry_run` the edits are validated and returned but not written.
    """
    changed = [e for e in edits if e.changed]
    if not changed:
        return Applied(list(edits))
    warnings = check_edits(root, changed)
    if not dry_run:
        for e in changed:
            atomic_write(root / e.path, e.after)
    return Applied(list(edits), warnings, written=not dry_run)
