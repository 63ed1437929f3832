"""Reading the YAML files users write (scenarios, studies) strictly.

PyYAML's safe loader keeps the last of two equal keys in a mapping and silently drops the
first; a file that is not text (a spreadsheet, an archive) gives a decoding traceback. Both
are stopped here for every file the project reads, with the path and the line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from environment.errors import InputError

TEXT_PROBE_BYTES = 8192


class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """A safe loader (libyaml's parser where installed: a 743-value list reads in
    milliseconds, not a quarter of a second) that refuses a key given twice in one mapping."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                continue  # PyYAML reports unhashable keys itself
            line = key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one mapping (lines {seen[key]} "
                    f"and {line}); the first value would be silently lost",
                    key_node.start_mark)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, source: str, what: str = "file",
               error: type[InputError] = InputError) -> Any:
    """YAML text as Python data; an `InputError` naming `source` for bad YAML or a key given
    twice in a mapping."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise error(f"invalid {what} {source}: not valid YAML: {exc}") from None


def read_text(path: str | Path, what: str = "file",
              error: type[InputError] = InputError) -> str:
    """The text of a file the user named; an `InputError` if it is missing, a folder, or not
    text (binary content or not UTF-8)."""
    path = Path(path)
    if path.is_dir():
        raise error(f"{what} {path}: is a folder, expected a YAML file")
    if not path.is_file():
        raise error(f"{what} file not found: {path}")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise error(f"{what} {path}: cannot be read ({exc.strerror})") from None
    if b"\x00" in raw[:TEXT_PROBE_BYTES]:
        raise error(f"{what} {path}: not a text file (binary content); expected YAML")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{what} {path}: not a text file (not UTF-8 at byte {exc.start}); "
                         "expected YAML") from None


def read_yaml(path: str | Path, what: str = "file",
              error: type[InputError] = InputError) -> Any:
    """A YAML file the user named, read strictly (see the module docstring); problems raise
    `error` (an `InputError` subclass: a scenario's or a study's error)."""
    return parse_yaml(read_text(path, what, error), str(path), what, error)
