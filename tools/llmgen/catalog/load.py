"""Load catalog files into plain data, keeping the line and column of every node.

Every catalog file holds exactly one Kubernetes-style document. Loading turns
it into plain Python data (dict, list, str, int, float, bool, None) plus an
index from each node's path to its position, so that later stages can say
`catalog/models/llama.yaml:14:7: spec.scaling.maxReplicas: ...`.

Parsing uses libyaml's composer (PyYAML's C loader): it yields the node graph
with marks, about ten times faster than a pure-Python round-trip parser, which
keeps `llmgen validate` under a second on a catalog of hundreds of models.
ruamel.yaml is still used where the user's formatting must survive an edit
(`edit.py`). Everything hostile is refused with a location: files over the size
limit, bytes that are not UTF-8, tabs, duplicate keys, several documents,
explicit tags, and alias bombs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llmgen.errors import CatalogError, Diagnostic, SourceLocation

# libyaml's loader when PyYAML was built with it; the pure-Python one otherwise
# (same events and marks, only slower).
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MAX_FILE_BYTES = 1024 * 1024
# A node reached through aliases counts every time it is reached; a catalog
# document is a few hundred nodes, so this bound only stops alias bombs.
MAX_EXPANDED_NODES = 100_000
MAX_DEPTH = 64

PathKey = tuple[str | int, ...]

_STANDARD_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:seq",
    "tag:yaml.org,2002:timestamp",
}
_SCALARS = yaml.constructor.SafeConstructor()


def path_str(path: PathKey) -> str:
    """`("spec", "nodePools", 0, "gpu")` -> `spec.nodePools[0].gpu`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


@dataclass
class Document:
    """One catalog document: its data, where it came from, and node positions."""

    file: str  # path relative to the repo root, with forward slashes
    data: dict[str, Any]
    sha256: str
    positions: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    #: The source text of every scalar YAML 1.1 did not read as a string
    #: (`off`, `0755`, `1.10`, `12:30:00`), for values that are text after all.
    scalar_text: dict[PathKey, str] = field(default_factory=dict)
    _content_hash: str = field(default="", repr=False, compare=False)

    @property
    def content_hash(self) -> str:
        """Hash of the document's data, blind to comments and formatting.

        Provenance headers use it, so re-indenting or commenting a catalog
        file does not touch every generated file.
        """
        if not self._content_hash:
            canonical = json.dumps(self.data, sort_keys=True, separators=(",", ":"), default=str)
            self._content_hash = hashlib.sha256(canonical.encode()).hexdigest()
        return self._content_hash

    @property
    def kind(self) -> str:
        return str(self.data.get("kind", ""))

    @property
    def name(self) -> str:
        meta = self.data.get("metadata")
        return str(meta.get("name", "")) if isinstance(meta, dict) else ""

    def locate(self, path: PathKey, *, key: bool = False) -> SourceLocation:
        """Position of `path`, or of its nearest ancestor that exists.

        With `key=True` the position of the mapping key is preferred (used for
        unknown-key errors, which should point at the key itself).
        """
        probe = tuple(path)
        while True:
            if key and probe in self.key_positions:
                line, col = self.key_positions[probe]
                return SourceLocation(self.file, line, col)
            if probe in self.positions:
                line, col = self.positions[probe]
                return SourceLocation(self.file, line, col)
            if not probe:
                return SourceLocation(self.file, 1, 1)
            probe = probe[:-1]

    def diagnostic(self, path: PathKey, message: str, **kw: Any) -> Diagnostic:
        return Diagnostic(
            self.locate(path, key=kw.pop("key", False)), path_str(path), message, **kw
        )


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Builder:
    """Turns a composed node graph into plain data and a position index."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.count = 0
        self.positions: dict[PathKey, tuple[int, int]] = {}
        self.key_positions: dict[PathKey, tuple[int, int]] = {}
        self.scalar_text: dict[PathKey, str] = {}

    def fail(self, node: yaml.Node, path: PathKey, message: str) -> CatalogError:
        line, col = _mark(node)
        return CatalogError.single(SourceLocation(self.file, line, col), path_str(path), message)

    def build(self, node: yaml.Node, path: PathKey, depth: int = 0) -> Any:
        self.count += 1
        if self.count > MAX_EXPANDED_NODES:
            raise self.fail(
                node,
                path,
                f"document expands to more than {MAX_EXPANDED_NODES} nodes "
                "(aliases that multiply, a 'YAML bomb'?); refusing to load it",
            )
        if depth > MAX_DEPTH:
            raise self.fail(node, path, f"nesting deeper than {MAX_DEPTH} levels")
        if node.tag not in _STANDARD_TAGS:
            raise self.fail(
                node, path, f"explicit YAML tag {node.tag!r} is not allowed in the catalog"
            )
        self.positions.setdefault(path, _mark(node))
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise self.fail(
                        key_node, path, "YAML merge keys ('<<') are not supported in the catalog"
                    )
                if not isinstance(key_node, yaml.ScalarNode):
                    raise self.fail(key_node, path, "mapping keys must be plain strings")
                key = key_node.value
                if key in out:
                    first = self.key_positions.get((*path, key), (0, 0))
                    raise self.fail(
                        key_node,
                        (*path, key),
                        f"duplicate key {key!r} (first defined at line {first[0]})",
                    )
                self.key_positions[(*path, key)] = _mark(key_node)
                out[key] = self.build(value_node, (*path, key), depth + 1)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        if node.tag == "tag:yaml.org,2002:timestamp":
            return node.value  # keep dates as written; schemas say "string"
        if node.tag == "tag:yaml.org,2002:str":
            return node.value
        value = _SCALARS.yaml_constructors[node.tag](_SCALARS, node)
        self.scalar_text[path] = node.value
        if isinstance(value, float) and not math.isfinite(value):
            # `.nan` and `.inf` would render as `threshold: nan` or `vector(inf)`.
            raise self.fail(
                node,
                path,
                f"{node.value!r} is not a finite number; NaN and infinity are not allowed",
            )
        return value


def _decode(raw: bytes, file: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        col = exc.start - (before.rfind(b"\n") + 1) + 1
        raise CatalogError.single(
            SourceLocation(file, line, col),
            "",
            f"file is not valid UTF-8 (byte 0x{raw[exc.start]:02x})",
        ) from None


def _yaml_error(exc: yaml.MarkedYAMLError, file: str) -> CatalogError:
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    problem = exc.problem or "invalid YAML"
    tab_context = mark is not None and mark.buffer and "\t" in problem + (exc.context or "")
    if tab_context or "'\\t'" in problem:
        problem = "tab character in indentation (YAML indents with spaces)"
    context = f" ({exc.context})" if exc.context and exc.context not in problem else ""
    return CatalogError.single(
        SourceLocation(file, line, col), "", f"invalid YAML: {problem}{context}"
    )


def _reader_error(exc: yaml.reader.ReaderError, text: str, file: str) -> CatalogError:
    # libyaml reports the offset in the UTF-8 encoding of the text, not in characters.
    before = text.encode("utf-8")[: exc.position]
    line = before.count(b"\n") + 1
    col = len(before[before.rfind(b"\n") + 1 :].decode("utf-8", "replace")) + 1
    return CatalogError.single(
        SourceLocation(file, line, col),
        "",
        f"invalid YAML: {exc.reason} (found #x{exc.character:04x})",
    )


def _check_nesting(text: str, file: str) -> None:
    """Refuse deep nesting before composing: libyaml's composer recurses in C and
    crashes the interpreter on input like ten thousand '[' characters."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=_LOADER):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    mark = event.start_mark
                    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
                    raise _too_deep(file, line, col)
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.MarkedYAMLError as exc:
        # Newer libyaml scans far ahead in flow context and stops at its own
        # limit (1,000 levels) before the parser emits the 65th level; find
        # where our limit was crossed so the message and place stay the same.
        if "nesting depth" not in str(exc.problem) or exc.problem_mark is None:
            raise
        # The first half of the text holds hundreds of levels but not libyaml's
        # limit: counting its events finds the 65th level where older libyaml
        # versions do, so the place does not depend on the installed version.
        prefix = text[: exc.problem_mark.index // 2]
        with contextlib.suppress(yaml.YAMLError):
            _check_nesting(prefix, file)
        line, col = _flow_depth_position(text)
        raise _too_deep(file, line, col) from None


def _too_deep(file: str, line: int, col: int) -> CatalogError:
    return CatalogError.single(
        SourceLocation(file, line, col), "", f"nesting deeper than {MAX_DEPTH} levels"
    )


def _flow_depth_position(text: str) -> tuple[int, int]:
    """Line and column of the first bracket that opens level MAX_DEPTH + 1."""
    depth = 0
    line, col = 1, 0
    for ch in text:
        col += 1
        if ch == "\n":
            line, col = line + 1, 0
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return line, col
        elif ch in "]}":
            depth -= 1
    return 1, 1


def load_text(text: str, file: str, sha256: str = "") -> Document:
    """Parse one catalog document from text; raises CatalogError with a location."""
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        # Only reachable through the API (files are decoded from bytes first).
        at_line = text.count("\n", 0, exc.start) + 1
        at_col = exc.start - (text.rfind("\n", 0, exc.start) + 1) + 1
        raise CatalogError.single(
            SourceLocation(file, at_line, at_col),
            "",
            "text holds an unpaired surrogate; it is not valid UTF-8",
        ) from None
    if "\t" in text:
        for lineno, text_line in enumerate(text.splitlines(), 1):
            stripped = text_line.lstrip(" ")
            if stripped.startswith("\t"):
                raise CatalogError.single(
                    SourceLocation(file, lineno, len(text_line) - len(stripped) + 1),
                    "",
                    "tab character in indentation (YAML indents with spaces)",
                )
    try:
        _check_nesting(text, file)
        nodes = list(yaml.compose_all(text, Loader=_LOADER))
    except yaml.MarkedYAMLError as exc:
        raise _yaml_error(exc, file) from None
    except yaml.reader.ReaderError as exc:
        raise _reader_error(exc, text, file) from None
    except yaml.YAMLError as exc:
        raise CatalogError.single(SourceLocation(file, 1, 1), "", f"invalid YAML: {exc}") from None
    nodes = [n for n in nodes if n is not None]
    if not nodes:
        raise CatalogError.single(
            SourceLocation(file, 1, 1), "", "file is empty; expected one catalog document"
        )
    if len(nodes) > 1:
        line, col = _mark(nodes[1])
        raise CatalogError.single(
            SourceLocation(file, line, col),
            "",
            f"file holds {len(nodes)} YAML documents; a catalog file holds exactly one",
        )
    builder = _Builder(file)
    data = builder.build(nodes[0], ())
    if not isinstance(data, dict):
        raise CatalogError.single(
            SourceLocation(file, *_mark(nodes[0])),
            "",
            "expected a mapping with apiVersion, kind, metadata and spec, "
            f"found {type(data).__name__}",
        )
    return Document(
        file=file,
        data=data,
        sha256=sha256 or hashlib.sha256(encoded).hexdigest(),
        positions=builder.positions,
        key_positions=builder.key_positions,
        scalar_text=builder.scalar_text,
    )


def load_file(path: Path, root: Path) -> Document:
    """Load one file under `root`; size and encoding are checked before parsing."""
    try:
        rel = path.relative_to(root).as_posix()
    except ValueError:
        rel = path.as_posix()
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise CatalogError.single(
            SourceLocation(rel, 1, 1),
            "",
            f"file is {size / 1e6:.1f} MB; "
            f"catalog files are limited to {MAX_FILE_BYTES // 1024} KiB",
        )
    raw = path.read_bytes()
    text = _decode(raw, rel)
    return load_text(text, rel, hashlib.sha256(raw).hexdigest())


#: Folders whose files llmgen reads (catalog) or points kustomize at (overlays).
INPUT_FOLDERS = ("catalog", "overlays")


def outside_links(root: Path, folders: tuple[str, ...] = INPUT_FOLDERS) -> dict[str, str]:
    """Symlinks under `folders` that resolve outside the repository: rel path -> why.

    A pull request could otherwise make llmgen read (and kustomize include)
    any file of the machine that renders it. Links inside the repository are
    fine; broken links are left to whatever reads them.
    """
    top = root.resolve()
    found: dict[str, str] = {}
    for folder in folders:
        base = root / folder
        if base.is_symlink():
            targets = [base]
        elif base.is_dir():
            targets = []
            for dirpath, dirs, files in os.walk(base):
                for name in [*dirs, *files]:
                    if (Path(dirpath) / name).is_symlink():
                        targets.append(Path(dirpath) / name)
        else:
            continue
        for link in targets:
            resolved = link.resolve()
            if resolved != top and top not in resolved.parents:
                rel = link.relative_to(root).as_posix()
                found[rel] = "symlink points outside the repository; refusing to follow it"
    return found


def catalog_files(root: Path, skip: frozenset[str] = frozenset()) -> Iterator[Path]:
    """Every YAML file under catalog/, in a stable order (none reached through `skip`)."""
    base = root / "catalog"
    for path in sorted(base.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if any(rel == s or rel.startswith(s + "/") for s in skip):
            continue
        if path.suffix in (".yaml", ".yml") and path.is_file():
            yield path


def load_catalog(root: Path) -> tuple[list[Document], list[Diagnostic]]:
    """Load every catalog file; returns the documents and the load diagnostics.

    A file that fails to load is left out of the documents and reported; the
    others still load so that one run shows every problem.
    """
    docs: list[Document] = []
    problems: list[Diagnostic] = []
    if not (root / "catalog").is_dir():
        raise CatalogError.single(
            SourceLocation("catalog", 0, 0), "", f"no catalog/ folder under {root}"
        )
    links = outside_links(root)
    problems.extend(
        Diagnostic(SourceLocation(rel, 1, 1), "", why) for rel, why in sorted(links.items())
    )
    for path in catalog_files(root, frozenset(links)):
        try:
            docs.append(load_file(path, root))
        except CatalogError as exc:
            problems.extend(exc.diagnostics)
    return docs, problems
