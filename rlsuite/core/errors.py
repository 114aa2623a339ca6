"""The one exception type for bad input: the CLI prints its message on one line and exits 1."""

import difflib


class UserError(Exception):
    """A problem the user can fix; the message names the problem and the fix."""


def close_matches(word: str, candidates, n: int = 3) -> str:
    """' (did you mean: a, b?)' or '' — for error messages about unknown names."""
    hits = difflib.get_close_matches(word, list(candidates), n=n, cutoff=0.5)
    if not hits:
        lowered = {c.lower(): c for c in candidates}
        hits = [lowered[h] for h in difflib.get_close_matches(word.lower(), list(lowered), n=n, cutoff=0.5)]
    return f" (did you mean: {', '.join(hits)}?)" if hits else ""
