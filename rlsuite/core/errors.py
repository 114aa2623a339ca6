"""The one exception type for bad input: the CLI prints its message on one line and exits 1."""

import difflib


class UserError(Exception):
    """A problem the user can fix; the message names the problem and the fix."""


class Aborted(KeyboardInterrupt):
    """A second Ctrl-C or SIGTERM while a run was stopping: no further checkpoint; the process exits with the
    signal's code (130 for SIGINT, 143 for SIGTERM) naming the runs, each of which keeps its last checkpoint."""

    def __init__(self, signal_name: str, exit_code: int, run_dirs: list):
        super().__init__(signal_name)
        self.signal_name, self.exit_code, self.run_dirs = signal_name, exit_code, [str(d) for d in run_dirs]


def close_matches(word: str, candidates, n: int = 3) -> str:
    """' (did you mean: a, b?)' or '' — for error messages about unknown names."""
    hits = difflib.get_close_matches(word, list(candidates), n=n, cutoff=0.5)
    if not hits:
        lowered = {c.lower(): c for c in candidates}
        hits = [lowered[h] for h in difflib.get_close_matches(word.lower(), list(lowered), n=n, cutoff=0.5)]
    return f" (did you mean: {', '.join(hits)}?)" if hits else ""
