"""Comment-preserving edits of the routing YAML, validated, written atomically, serialised.

An edit reads the file, changes values in ruamel.yaml's round-trip tree (comments, order
and quoting kept), validates the result as a whole config, and replaces the file by
rename, so a gateway reloading concurrently sees the old file or the new one, never half
of one. A lock file beside the config serialises concurrent edits.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

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
