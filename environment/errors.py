"""The one exception class of bad input, importable without the scientific stack.

Every problem a user can fix in a file or on the command line (a scenario, a study, a data
series, an output path) is an `InputError` whose lines each name the field or path and the
value; the CLI prints it and exits 2 without a traceback. Kept in a module of its own so that
the CLI can catch it before pydantic, pandas or the model are imported."""

from __future__ import annotations


class InputError(ValueError):
    """Input that cannot be used; each line names a field or path and its value."""


class ScenarioError(InputError):
    """A scenario that cannot be run; each line names a field and its value."""


def did_you_mean(word: str, choices, n: int = 3) -> str:
    """' (did you mean a, b?)' for close matches of `word` among `choices`, else ''."""
    import difflib

    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=n, cutoff=0.6)
    return f" (did you mean {', '.join(close)}?)" if close else ""
