"""A live view of many runs at once, for the commands that train several (a population, compare, sweep, tune).

It reads each run's status.json, which a training run rewrites every few seconds with its step, rate and latest
returns (Run.progress), so it shows the runs of this process and of any other alike: compare's SB3 workers,
sweep's and tune's child processes. On a terminal it is one live table (a row per run in flight: step, rate,
latest evaluation, ETA; the finished count below); elsewhere a plain block of the same lines every 30 seconds;
`mode=None` shows nothing.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Callable, Sequence

from rich.console import Console
from rich.live import Live
from rich.table import Table

from rlsuite.run.rundir import read_status

LINE_SECONDS = 30.0
STALE_SECONDS = 120.0  # a "running" status not rewritten for this long: its process is gone (kill -9) or paused
DONE = ("complete", "failed")


def eta(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return "—"
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def run_row(name: str, status: dict, now: float | None = None) -> list[str] | None:
    """[run, step, %, steps/s, eval, ETA] of a run in flight (its status.json), or None when it is not training."""
    if status.get("status") != "running" or "updated" not in status:
        return None
    now = time.time() if now is None else now
    step, total, rate = int(status.get("step", 0)), status.get("total"), status.get("steps_per_s")
    stale = now - float(status["updated"]) > STALE_SECONDS
    remaining = (total - step) / rate if total and rate else None
    last = status.get("last_eval")
    return [name, f"{step:,}" + (f"/{total:,}" if total else ""), f"{100 * step / total:.0f}%" if total else "—",
            f"{rate:,.0f}" if rate else "—", f"{last:.1f}" if last is not None else "—",
            "stalled" if stale else eta(remaining)]


def runs_touched_since(root: Path, since: float, every: float = 10.0) -> Callable[[], list[Path]]:
    """A LiveRuns source for work whose runs are not known in advance (a benchmark script): the run directories
    under ROOT whose status.json changed after SINCE, rescanned at most every EVERY seconds."""
    cache: dict = {"at": 0.0, "dirs": []}

    def current() -> list[Path]:
        now = time.monotonic()
        if now - cache["at"] >= every:
            cache["at"] = now
            found = []
            for status in Path(root).glob("**/status.json"):
                try:
                    if status.stat().st_mtime >= since:
                        found.append(status.parent)
                except OSError:
                    continue
            cache["dirs"] = sorted(found)
        return cache["dirs"]

    return current


class LiveRuns:
    """with LiveRuns(dirs, "compare dqn CartPole-v1"): ... shows dirs (a list, or a function returning the current
    list) while the block runs. mode: "auto" (a live table on a terminal, else plain lines), "table", "lines", None."""

    def __init__(self, run_dirs: Sequence[Path] | Callable[[], Sequence[Path]], title: str, mode: str | None = "auto",
                 stream=None):
        self._dirs = run_dirs if callable(run_dirs) else (lambda dirs=list(run_dirs): dirs)
        self.title = title
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "table" if getattr(self.stream, "isatty", lambda: False)() else "lines"
        self.mode = mode
        self._final: dict[Path, dict] = {}  # runs that ended are read once: the view costs the training little
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._live = None

    def rows(self) -> tuple[list[list[str]], int, int]:
        """(rows of the runs in flight, finished, total)."""
        dirs = [Path(d) for d in self._dirs()]
        statuses = []
        for d in dirs:
            status = self._final.get(d) or read_status(d)
            if status.get("status") in DONE:
                self._final[d] = status
            statuses.append((d.name, status))
        rows = [r for name, s in statuses if (r := run_row(name, s)) is not None]
        return rows, sum(s.get("status") in DONE for _, s in statuses), len(dirs)

    def lines(self) -> list[str]:
        rows, done, total = self.rows()
        out = [f"[{self.title}] {done}/{total} finished, {len(rows)} training"]
        out += [f"  {r[0]}  step {r[1]} ({r[2]})  {r[3]} steps/s  eval {r[4]}  ETA {r[5]}" for r in rows]
        return out

    def _table(self) -> Table:
        rows, done, total = self.rows()
        table = Table(title=f"{self.title}: {done}/{total} finished", title_justify="left", box=None, pad_edge=False)
        for column, justify in (("run", "left"), ("step", "right"), ("%", "right"), ("steps/s", "right"),
                                ("eval", "right"), ("ETA", "right")):
            table.add_column(column, justify=justify)
        for r in rows:
            table.add_row(*r)
        return table

    def _print_lines(self) -> None:
        while not self._stop.wait(LINE_SECONDS):
            print("\n".join(self.lines()), file=self.stream, flush=True)

    def __enter__(self):
        if self.mode == "table":
            # what the command prints to stderr meanwhile goes above the table; stdout stays where it was sent
            self._live = Live(get_renderable=self._table, console=Console(file=self.stream), refresh_per_second=0.5,
                              transient=True, redirect_stdout=False)
            self._live.start()
        elif self.mode == "lines":
            self._thread = threading.Thread(target=self._print_lines, daemon=True, name="rlsuite-live-runs")
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._live is not None:
            self._live.stop()
        if self._thread is not None:
            self._thread.join(timeout=5)
        return False
