"""`--set PATH=VALUE` on the command line: the one parser of overrides every command shares."""

from __future__ import annotations

from typing import Any

from environment.errors import InputError


def parse_value(text: str) -> Any:
    """A value as YAML reads it (numbers, booleans, null, lists, strings)."""
    from environment.yamlio import parse_yaml

    return parse_yaml(text, f"value {text!r}", "--set")


def parse_sets(items: list[str] | None, error: type[InputError] = InputError) -> dict:
    """{dotted path: value} of repeated `--set PATH=VALUE`; `error` names a bad item."""
    out = {}
    for kv in items or []:
        key, eq, text = kv.partition("=")
        key = key.strip()
        if not eq or not key:
            raise error(f"--set {kv!r}: expected PATH=VALUE, e.g. calendar.days=3")
        if not all(key.split(".")):
            raise error(f"--set {kv!r}: {key!r} is not a dotted path (an empty part)")
        out[key] = parse_value(text)
    return out
