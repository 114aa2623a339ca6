"""A benchmark grid: cells (an agent on an env, rlsuite vs SB3 over seeds) that take many CPU-hours,
so they span sessions and, on a machine with spare cores, several processes.

Each process trains the cells given to it (all by default), in order; a cell another live process is
training is skipped (its runs are locked) and reported once that process finishes it. After every
cell the whole section is rendered again from what is finished on disk, under the report's lock
(report.write_section), so whichever process publishes last shows every finished cell, and the cells
still to run are named.

A grid outlives the machine it started on: results/runs/ is not committed (checkpoints and replay buffers
are hundreds of MB), and a session may start on a fresh checkout. So each finished run's record (the files
reports, plots and reuse read; tens of kB) is copied beside the report, where git keeps it (rundir.save_record),
and a fresh checkout restores the records it lacks before training (rundir.restore_records): the grid then
reuses those runs as it reuses any finished run. A run still open when its machine goes is lost and starts over.
A cell published before records were kept is shown as published and not re-trained (fill_grid's `kept`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Hashable

from rlsuite.core.errors import UserError
from rlsuite.experiments import compare
from rlsuite.experiments.report import pending_note
from rlsuite.run.rundir import RunBusy


def _words(text: str | None) -> list[str]:
    """The words of a comma-separated filter (--cells, --rows); None or "" has none."""
    return [w.strip() for w in (text or "").split(",") if w.strip()]


def _names(key: tuple) -> set[str]:
    return {key[0], key[1], f"{key[0]}:{key[1]}"}


def mine(key: tuple, only: str | None) -> bool:
    """Whether a cell (agent, env_id) is this process's to train: `only` is a comma list of agents, env
    ids or agent:env_id pairs (e.g. "ppo", "dqn:MinAtar/Asterix-v1"); None or "" is every cell."""
    if not only:
        return True
    return bool(set(_words(only)) & _names(key))


def check_only(cells: list[tuple], only: str | None) -> None:
    """A filter word that names no cell is a typo (it would train nothing, silently): one line naming them."""
    unknown = [w for w in _words(only) if not any(w in _names(k) for k in cells)]
    if unknown:
        choices = sorted({k[0] for k in cells}) + sorted({k[1] for k in cells})
        raise UserError(f"--cells {', '.join(unknown)} names no cell; use agents, env ids or agent:env_id from "
                        f"{', '.join(choices)}")


def check_rows(rows: str | None, labels) -> None:
    """A row label no cell has would train nothing, silently: one line naming the grid's labels."""
    unknown = [w for w in _words(rows) if w not in labels]
    if unknown:
        raise UserError(f"--rows {', '.join(unknown)} names no row of these cells; use {', '.join(labels)} "
                        "(comma-separated)")


def train_rows(env_id: str, seeds, out, variants: dict, rows: str | None, on_result=None) -> dict | None:
    """A cell's runs (compare.side_by_side), or with `rows` (comma-separated labels, e.g. "rlsuite-bf16")
    only those rows' runs, so a process can answer one row's question first; a cell without those rows
    trains nothing. Runs another process holds are left to it while the rest go on (RunBusy at the end).
    With `rows` the cell is returned only once all its rows are finished (None: another process still
    owes some), so a publish never shows half a cell."""

    wanted = set(_words(rows))
    picked = {label: v for label, v in variants.items() if not wanted or label in wanted}
    result = compare.side_by_side(env_id, seeds, out, picked, False, on_result, skip_busy=True)
    return compare.finished(env_id, seeds, out, variants) if wanted else result


def kept_if_gone(run_dirs, block: list[str]) -> tuple[list[str], list[str]] | None:
    """fill_grid's `kept` for one cell: its published block (as table lines) while none of its run directories
    exists. Any run here, stale, open or part of the cell, makes it the grid's to train and show again."""
    if not block or any(Path(d).exists() for d in run_dirs):
        return None
    return block, []


def fill_grid(cells: list[Hashable], shown: list[Hashable], train: Callable, peek: Callable, render: Callable,
              head: list[str], intro: int, name: Callable = str, publish: Callable | None = None,
              only: str | None = None, kept: Callable | None = None) -> Callable[[], list[str]]:
    """Train `cells` (in this order); return the function that renders the section from disk.

    train(key) -> result, reusing finished runs and resuming open ones (raises RunBusy for a run another
    process holds); peek(key) -> the result if all its runs are finished, else None, touching nothing;
    render(key, result) -> (table lines, lines after the table). `shown` is the report's order; `head`
    the lines before the table, the progress note going in at index `intro`. publish(section) is called
    after every cell trained here, with the rendering function (to call under the report's lock).
    kept(key) -> (table lines, lines after) of a cell the report shows but whose runs are not on this
    machine (published before records were kept), else None: such a cell is shown as published and not
    re-trained, where re-training it would cost its CPU-hours again."""
    check_only(cells, only)
    results: dict = {}

    def found(key):
        # a cell this process trained only some rows of (None) is looked up on disk like the others
        got = results[key] if results.get(key) is not None else peek(key)
        if got is not None:
            return render(key, got)
        return kept(key) if kept is not None else None

    def section() -> list[str]:
        got = {key: found(key) for key in shown}
        table, after = [], []
        for key in shown:
            if got[key] is not None:
                rows, extra = got[key]
                table += rows
                after += extra
        lines = head + table + ([""] + after if after else []) + [""]
        pending = [name(key) for key in cells if got[key] is None]
        if not pending:
            return lines

        return pending_note(lines, intro, pending, len(cells))

    for key in cells:
        if not mine(key, only):
            continue
        if kept is not None and kept(key) is not None:  # no run of it here, so nothing for peek to find
            print(f"kept {name(key)} as published: its runs are not on this machine", file=sys.stderr, flush=True)
            continue
        try:
            results[key] = train(key)
        except RunBusy as e:  # another process holds a run of this cell: it publishes the cell when done ...
            print(f"skipped {name(key)}: {e}", file=sys.stderr, flush=True)
            if peek(key) is None:
                continue
            # ... unless that run finished while this process trained the cell's others: then only this one can
        if publish is not None:
            publish(section)
    return section
