"""Rendered YAML files as located documents, for verify.

A file under generated/ may hold several documents. Each becomes a `Manifest`
that knows its file and first line, and keeps its own source text so that a
later error can be pinned to the exact node (`Manifest.locate`). Parsing uses
yaml_rs (a Rust parser, several times faster than libyaml through PyYAML);
positions are only computed, with PyYAML's composer, for documents that have a
problem, so a clean tree pays nothing for them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml
import yaml_rs

from llmgen.catalog.load import PathKey, path_str
from llmgen.errors import Diagnostic, SourceLocation

# A line starting with `---` or `...` at column 0 (followed by a blank or the
# end of the line) is a document marker wherever it appears: YAML forbids it
# inside any scalar, so splitting the text on it is exact.
_MARKER = re.compile(r"^(?:---|\.\.\.)(?=[ \t\r\n]|$)", re.MULTILINE)
_PARSE_POS = re.compile(r"at line (\d+), column (\d+)")
_COMPOSER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True, slots=True)
class Manifest:
    """One YAML document: where it starts, its data, and its source text.

    `text` is empty for documents built in memory; they are then located at
    their first line only.
    """

    file: str  # relative to the repo root, with forward slashes
    line: int  # 1-based line of the document's first content line
    data: Any
    text: str = ""
    text_line: int = 1  # file line on which `text` starts

    @property
    def kind(self) -> str:
        kind = self.data.get("kind") if isinstance(self.data, dict) else None
        return kind if isinstance(kind, str) else ""

    @property
    def api_version(self) -> str:
        api = self.data.get("apiVersion") if isinstance(self.data, dict) else None
        return api if isinstance(api, str) else ""

    @property
    def metadata(self) -> dict[str, Any]:
        meta = self.data.get("metadata") if isinstance(self.data, dict) else None
        return meta if isinstance(meta, dict) else {}

    @property
    def name(self) -> str:
        name = self.metadata.get("name")
        return name if isinstance(name, str) else ""

    @property
    def namespace(self) -> str:
        ns = self.metadata.get("namespace")
        return ns if isinstance(ns, str) else ""

    @property
    def identity(self) -> str:
        """`Kind/namespace/name` (or `Kind/name` for cluster-scoped objects)."""
        parts = [self.kind or "?", self.namespace, self.name or "?"]
        return "/".join(p for p in parts if p)

    def locate(self, path: PathKey, *, key: bool = False) -> SourceLocation:
        """Position of `path` in this document, or of its nearest existing ancestor.

        With `key=True` a mapping entry is located at its key, which is where an
        unknown-field error should point.
        """
        found = _find(self.text, path, key=key) if self.text else None
        if found is None:
            return SourceLocation(self.file, self.line, 1)
        line, col = found
        return SourceLocation(self.file, self.text_line + line, col + 1)

    def diagnostic(
        self, path: PathKey, message: str, *, at: PathKey | None = None, **kw: Any
    ) -> Diagnostic:
        """A diagnostic labelled `Kind/ns/name: json.path`.

        It is located at `path`, or at the mapping key `at` when given (an
        unknown field is reported on its object but shown at the key).
        """
        inner = path_str(path)
        label = f"{self.identity}: {inner}" if inner else self.identity
        where = self.locate(at, key=True) if at is not None else self.locate(path)
        return Diagnostic(where, label, message, **kw)


def _find(text: str, path: PathKey, *, key: bool) -> tuple[int, int] | None:
    """0-based (line, col) of `path` within `text`; None if it cannot be composed."""
    try:
        node = yaml.compose(text, Loader=_COMPOSER)
    except yaml.YAMLError:
        return None
    if node is None:
        return None
    mark = node.start_mark
    for part in path:
        child: Any = None
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                # Compare the raw scalar text: PyYAML would read `on:` as True.
                if isinstance(k, yaml.ScalarNode) and k.value == str(part):
                    child = v
                    mark = k.start_mark if key else v.start_mark
                    break
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            child = node.value[part]
            mark = child.start_mark
        if child is None:
            break
        node = child
    return mark.line, mark.column


@dataclass(frozen=True, slots=True)
class ParseProblem:
    """A document that is not valid YAML."""

    location: SourceLocation
    message: str

    def diagnostic(self) -> Diagnostic:
        return Diagnostic(self.location, "", self.message)


def _content_line(chunk: str) -> int:
    """0-based offset of the first line in `chunk` that holds YAML content."""
    offset = pos = 0
    while pos < len(chunk):
        end = chunk.find("\n", pos)
        end = len(chunk) if end < 0 else end
        line = chunk[pos:end].strip()
        if line[:3] in ("---", "..."):
            line = line[3:].strip()  # a marker may carry content: `--- |`
        if line and not line.startswith("#"):
            return offset
        offset += 1
        pos = end + 1
    return 0


def _document_starts(text: str) -> list[int]:
    """Offsets at which documents start (always including 0)."""
    if "\n..." in text or text.startswith("..."):
        # Explicit document ends are rare in rendered files; the general scan.
        found = [m.start() for m in _MARKER.finditer(text)]
        return found if found and found[0] == 0 else [0, *found]
    # The common case, scanned with str.find: ~10x faster than the regex on
    # files that bundle dozens of documents.
    starts = [0]
    at = text.find("\n---")
    while at >= 0:
        after = at + 4
        if after == len(text) or text[after] in " \t\r\n":
            starts.append(at + 1)
        at = text.find("\n---", after)
    return starts


def split_documents(text: str, file: str) -> Iterator[Manifest | ParseProblem]:
    """Each non-empty document of `text`, or a located parse problem."""
    starts = _document_starts(text)
    starts.append(len(text))
    line = 1
    for begin, end in zip(starts, starts[1:], strict=False):
        chunk = text[begin:end]
        chunk_line = line
        line += chunk.count("\n")
        try:
            data = yaml_rs.loads(chunk, parse_datetime=False)
        except yaml_rs.YAMLDecodeError as exc:
            yield _parse_problem(str(exc), file, chunk_line, chunk)
            continue
        if data is None:
            continue
        yield Manifest(file, chunk_line + _content_line(chunk), data, chunk, chunk_line)


def _parse_problem(message: str, file: str, chunk_line: int, chunk: str) -> ParseProblem:
    # yaml_rs reports `... at line L, column C` plus a source excerpt; keep the
    # position (shifted to the file) and the last line, which says what is wrong.
    pos = _PARSE_POS.search(message)
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    reason = lines[-1] if lines else "invalid YAML"
    if pos:
        where = SourceLocation(file, chunk_line + int(pos.group(1)) - 1, int(pos.group(2)))
    else:
        where = SourceLocation(file, chunk_line + _content_line(chunk), 1)
    return ParseProblem(where, f"invalid YAML: {reason}")
