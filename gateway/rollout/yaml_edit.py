"""Comment-preserving edits of the routing YAML, validated, written atomically, serialised.

An edit reads the file, changes values in ruamel.yaml's round-trip tree (comments, order
and quoting kept), validates the result as a whole config, and replaces the file by
rename, so a gateway reloading concurrently sees the old file or the new one, never half
of one. A lock file beside the config serialises concurrent edits. :func:`swap_fields`
moves fields between two mappings of the tree with their comments.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark
from ruamel.yaml.tokens import CommentToken

from gateway.settings.loader import parse_config


def _yaml() -> YAML:
    yaml = YAML()  # round-trip mode
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap long lines
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path``'s sibling lock file."""
    lock_path = path.with_name(f".{path.name}.lock")
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def render(path: Path, change: Callable[[Any], None]) -> tuple[str, str]:
    """The file's text before and after ``change`` mutates its round-trip tree."""
    before = path.read_text(encoding="utf-8")
    yaml = _yaml()
    tree = yaml.load(before)
    change(tree)
    out = io.StringIO()
    yaml.dump(tree, out)
    return before, out.getvalue()


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` by rename; the target of a symlink is replaced."""
    target = path.resolve()
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, target.stat().st_mode & 0o777)
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def edit(path: Path, change: Callable[[Any], None]) -> tuple[str, str]:
    """Apply ``change`` under the lock; validate the whole result before writing it.

    Raises :class:`gateway.settings.ConfigError` (and writes nothing) when the edited
    config would be refused by the gateway.
    """
    with locked(path):
        before, after = render(path, change)
        parse_config(after, path)
        if after != before:
            write_atomically(path, after)
        return before, after


def swap_fields(a: CommentedMap, b: CommentedMap, keys: Iterable[str]) -> None:
    """Swap ``keys`` between two mappings; a key present on one side only moves across.

    A field's comments (on its line, on the lines right above it, inside its value) move
    with it; the lines after a mapping's last field belong to whatever follows the mapping
    and stay. ruamel.yaml keeps comment lines in the token ending the line above them, so
    they are detached first and re-attached to the new layout.
    """
    above_a, tail_a = _detach_lines(a)
    above_b, tail_b = _detach_lines(b)
    moved = list(dict.fromkeys(keys))
    order_a, order_b = list(a), list(b)
    for key in moved:
        if key in a and key in b:
            a[key], b[key] = b[key], a[key]
            entry_a, entry_b = a.ca.items.pop(key, None), b.ca.items.pop(key, None)
            if entry_b is not None:
                a.ca.items[key] = entry_b
            if entry_a is not None:
                b.ca.items[key] = entry_a
        elif key in a:
            _move(a, b, key, order_a)
        elif key in b:
            _move(b, a, key, order_b)
    _attach_lines(a, {k: (above_b if k in moved else above_a).get(k, "") for k in a}, tail_a)
    _attach_lines(b, {k: (above_a if k in moved else above_b).get(k, "") for k in b}, tail_b)


def _move(source: CommentedMap, target: CommentedMap, key: str, order: list[Any]) -> None:
    """Move ``key`` into ``target`` after the nearest field that preceded it in ``order``."""
    anchors = [k for k in order[: order.index(key)] if k in target]
    position = list(target).index(anchors[-1]) + 1 if anchors else 0
    entry = source.ca.items.pop(key, None)
    target.insert(position, key, source.pop(key))
    if entry is not None:
        target.ca.items[key] = entry


def _detach_lines(mapping: CommentedMap) -> tuple[dict[Any, str], str]:
    """Take out the comment lines above each field but the first, and those after the last."""
    keys = list(mapping)
    above: dict[Any, str] = {}
    tail = ""
    for index, key in enumerate(keys):
        token = _line_end(mapping, key, create=False)
        if token is None:
            continue
        own, newline, lines = token.value.partition("\n")
        token.value = own + newline
        if index + 1 < len(keys):
            above[keys[index + 1]] = lines
        else:
            tail = lines
    return above, tail


def _attach_lines(mapping: CommentedMap, above: dict[Any, str], tail: str) -> None:
    keys = list(mapping)
    for index, key in enumerate(keys):
        # Lines above a field that is now the first would land above the mapping's own
        # key; they go below that field instead.
        _append_lines(mapping, keys[max(index - 1, 0)], above.get(key, ""))
    if keys:
        _append_lines(mapping, keys[-1], tail)


def _append_lines(mapping: CommentedMap, key: Any, lines: str) -> None:
    if lines:
        token = _line_end(mapping, key, create=True)
        assert token is not None
        # An empty line comment is a bare newline; the lines follow it.
        token.value = (token.value or "\n") + lines


def _line_end(node: Any, key: Any, *, create: bool) -> CommentToken | None:
    """The token ending ``key``'s last line: its line comment and the comment lines below.

    For a block collection that is the token of its last item, recursively; a flow
    collection ends on its key's line.
    """
    value = node[key]
    if isinstance(value, CommentedMap | CommentedSeq) and value and not value.fa.flow_style():
        last = list(value)[-1] if isinstance(value, CommentedMap) else len(value) - 1
        return _line_end(value, last, create=create)
    slot = 2 if isinstance(node, CommentedMap) else 0  # where ruamel.yaml keeps it
    entry = node.ca.items.get(key)
    if entry is None:
        if not create:
            return None
        entry = node.ca.items[key] = [None, None, None, None]
    if entry[slot] is None and create:
        entry[slot] = CommentToken("", CommentMark(0))
    token: CommentToken | None = entry[slot]
    return token
