"""Markdown tables for benchmark reports and `compare`: docs/protocol.md aggregates per implementation."""

from __future__ import annotations

import datetime as dt
import fcntl
import re
import statistics
from contextlib import contextmanager
from pathlib import Path

from rlsuite.core.seeding import SEEDING
from rlsuite.core.stats import aggregate
from rlsuite.experiments.plots import plot_curves
from rlsuite.run.rundir import atomic_write_text, float_path, hardware, versions


def fmt(x, digits: int = 1) -> str:
    return "—" if x is None else f"{x:,.{digits}f}"


def final_episodes(results: dict[str, list[dict]]) -> str:
    """How many episodes the final evaluations ran ('20'; '3-20' when runs differ): a report states what
    its runs did, not the protocol's default."""
    counts = sorted({n for v in results.values() for s in v
                     if (n := s["final_eval"].get("episodes") or len(s["final_eval"].get("returns", [])))})
    if not counts:  # summaries that do not say: the protocol's count
        return "20"
    return str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"


def header(title: str, command: str, seeds, device: str = "cpu", threads: int = 1, episodes: str = "20") -> list[str]:
    path = float_path()
    if path != "native":  # the command that regenerates the report must select the same float path
        command = f"{path} {command}"
    return [
        f"# {title}", "",
        f"Regenerate: `{command}`  ",
        f"Date: {dt.date.today().isoformat()} · Hardware: {hardware()} · float path: {path} · "
        f"torch threads: {threads} · device: {device}  ",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in versions().items())
        + (f"  \nSeeds: {list(seeds)}" if seeds is not None else "  \nSeeds: each section states its own"), "",
        f"Evaluation per the protocol (docs/protocol.md): a separate env, its episodes seeded from the run's seed "
        f"(seeding {SEEDING}: SeedSequence, no two runs share a start state), deterministic policy, "
        f"every `eval_every` steps (env card), final evaluation {episodes} episodes, raw returns. *solved*: some "
        f"evaluation mean ≥ threshold; *stays solved*: the final {episodes}-episode evaluation ≥ threshold. "
        "Medians over seeds; "
        "`*` marks medians that include unsolved runs counted at the full budget. Wall-clock excludes evaluation.", "",
    ]


def _no_threshold(results: dict[str, list[dict]]) -> bool:
    """An env with no solve threshold (MinAtar, most Atari games): scores only, no solve columns."""
    return all(s.get("threshold") is None for v in results.values() for s in v)


def aggregate_table(results: dict[str, list[dict]], max_return: float | None = None) -> list[str]:
    """One row per implementation: success, stays solved, IQM [95% CI], medians."""
    if _no_threshold(results):
        lines = ["| implementation | IQM final [95% CI] | mean final | median steps/s |", "|---|---|---|---|"]
        for name, summaries in results.items():
            agg = aggregate(summaries)
            lo, hi = agg["final_ci"]
            lines.append(f"| {name} | {agg['final_iqm']:.1f} [{lo:.1f}, {hi:.1f}] | {sum(agg['finals']) / agg['n']:.1f} | "
                         f"{fmt(agg['median_steps_per_s'], 0)} |")
        return lines + ["", "No solve threshold for this env: scores only.", ""]
    head = "| implementation | solved | stays solved |" + (f" final = {max_return:g} |" if max_return else "")
    head += " IQM final [95% CI] | median steps-to-solve | median wall-to-solve (s) | median steps/s |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for name, summaries in results.items():
        agg = aggregate(summaries)
        lo, hi = agg["final_ci"]
        cells = [name, f"{agg['solved']}/{agg['n']}", f"{agg['stays_solved']}/{agg['n']}"]
        if max_return:
            cells.append(f"{sum(s['final_eval']['mean'] >= max_return for s in summaries)}/{agg['n']}")
        mark = " *" if agg["unsolved_marked"] else ""
        cells += [f"{agg['final_iqm']:.1f} [{lo:.1f}, {hi:.1f}]", fmt(agg["median_steps_to_solve"], 0) + mark,
                  fmt(agg["median_wall_to_solve"]) + mark, fmt(agg["median_steps_per_s"], 0)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def per_seed_table(results: dict[str, list[dict]]) -> list[str]:
    def seed(s: dict) -> str:  # † marks a run that was resumed from a checkpoint
        return f"{s['seed']}†" if s.get("resumed_at") else str(s["seed"])

    if _no_threshold(results):
        lines = ["| implementation | seed | final | steps/s |", "|---|---|---|---|"]
        lines += [f"| {name} | {seed(s)} | {s['final_eval']['mean']:.1f} | {s['steps_per_s']:,.0f} |"
                  for name, summaries in results.items() for s in summaries]
        return lines + resumed_note(results) + [""]
    lines = [f"| implementation | seed | final ({final_episodes(results)} ep.) | steps-to-solve | wall-to-solve (s) | "
             "steps/s | outcome |",
             "|---|---|---|---|---|---|---|"]
    for name, summaries in results.items():
        for s in summaries:
            outcome = "stays solved" if s["stays_solved"] else "solved, then collapsed" if s["solved"] else "not solved"
            lines.append(f"| {name} | {seed(s)} | {s['final_eval']['mean']:.1f} | {fmt(s['steps_to_solve'], 0)} | "
                         f"{fmt(s['wall_to_solve'])} | {s['steps_per_s']:,.0f} | {outcome} |")
    return lines + resumed_note(results) + [""]


def resumed_note(results: dict[str, list[dict]]) -> list[str]:
    """The footnote for runs that were resumed: where, and what a resume keeps."""
    resumed = [f"{name} seed {s['seed']} at step {', '.join(f'{k:,}' for k in s['resumed_at'])}"
               for name, summaries in results.items() for s in summaries if s.get("resumed_at")]
    if not resumed:
        return []
    return ["", f"† resumed from a checkpoint: {'; '.join(resumed)}. rlsuite's resumes are exact; SB3's restart the "
                "episodes that were running (rlsuite/sb3/training_state.py)."]


def verdict(value: float, target: float, higher_is_better: bool) -> str:
    """'met' or 'missed by F×': how far a measured ratio is from its target, in the target's direction."""
    met = value >= target if higher_is_better else value <= target
    if met:
        return "**met**"
    return f"**missed** by {(target / value if higher_is_better else value / target):.2f}×"


def ratio_lines(ours: list[dict], theirs: list[dict], label_ours: str, label_theirs: str) -> dict:
    """Median ratios ours/theirs for wall-to-solve and steps/s, plus the per-seed steps/s pairs; and
    `steps_per_cpu_s`, the ratio of steps per CPU second of the training process (which other load on a
    shared machine does not skew), over the runs that kept their CPU time (None where a side has none;
    `cpu_runs` says how many of each side's runs that is: runs made before it was recorded have none)."""

    a, b = aggregate(ours), aggregate(theirs)
    kept = [[s["steps_per_cpu_s"] for s in side if s.get("steps_per_cpu_s")] for side in (ours, theirs)]
    cpu = statistics.median(kept[0]) / statistics.median(kept[1]) if all(kept) else None
    # CPU seconds of training to the first solving evaluation, over the seeds that solved: a population member's
    # wall-clock is its whole population's, so this, not wall-to-solve, compares a member with a lone run
    to_solve = [[s["steps_to_solve"] / s["steps_per_cpu_s"] for s in side
                 if s.get("steps_to_solve") and s.get("steps_per_cpu_s")] for side in (ours, theirs)]
    cpu_to_solve = statistics.median(to_solve[0]) / statistics.median(to_solve[1]) if all(to_solve) else None
    return {"wall_to_solve": a["median_wall_to_solve"] / b["median_wall_to_solve"], "cpu_to_solve": cpu_to_solve,
            "steps_per_s": a["median_steps_per_s"] / b["median_steps_per_s"], "steps_per_cpu_s": cpu,
            "cpu_runs": (len(kept[0]), len(ours), len(kept[1]), len(theirs)),
            "pairs": [x["steps_per_s"] / y["steps_per_s"] for x, y in zip(ours, theirs)],
            "labels": (label_ours, label_theirs), "ours": a, "theirs": b}


def iqm_verdict(ours: list[dict], theirs: list[dict], label_ours: str, label_theirs: str, note: str = "") -> str:
    """Where OURS' final IQM lies against THEIRS' 95% bootstrap interval (docs/protocol.md's question, "within the
    other's interval or above?"), and by how much it misses: "rlsuite's final IQM X is **below** SB3's 95% interval
    [lo, hi] by D (SB3's IQM Y)"."""
    other = aggregate(theirs)
    return _placed(aggregate(ours)["final_iqm"], other["final_ci"], other["final_iqm"], label_ours, label_theirs, note)


def _placed(ia: float, ci: tuple[float, float], ib: float, label_ours: str, label_theirs: str, note: str) -> str:
    lo, hi = ci
    where = "inside" if lo <= ia <= hi else "above" if ia > hi else "below"
    by = "" if where == "inside" else f" by {(ia - hi if where == 'above' else lo - ia):,.1f}"
    return (f"{label_ours}'s final IQM {ia:,.1f} is **{where}** {label_theirs}'s 95% interval [{lo:,.1f}, {hi:,.1f}]"
            f"{by} ({label_theirs}'s IQM {ib:,.1f}{'; ' + note if note else ''})")


_NUMBER = r"(-?\d[\d,]*(?:\.\d+)?)"
_IQM_CELL = re.compile(rf"^{_NUMBER} \[{_NUMBER}, {_NUMBER}\]$")


def with_table_verdicts(block: list[str], theirs: str, label_theirs: str, note: str = "") -> list[str]:
    """A block kept as published (its runs are gone, so only its text is left) with iqm_verdict's lines read off
    its aggregate table's "IQM final [95% CI]" column, where a live cell has them (after its speed bullets, before
    the published reference points), unless it has them already: the verdict of a cell published before verdicts
    were written. The table's numbers are rounded to 0.1, so a "by" amount can differ from a live run's by 0.1."""
    if any(re.search(r" is \*\*(inside|above|below)\*\* ", line) for line in block):
        return block
    head = next((i for i, line in enumerate(block) if "| IQM final [95% CI] |" in line), None)
    if head is None:
        return block
    column = [c.strip() for c in block[head].split("|")].index("IQM final [95% CI]")
    iqms = {}
    for line in block[head + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.split("|")]
        if match := _IQM_CELL.match(cells[column]):
            iqms[cells[1]] = tuple(float(x.replace(",", "")) for x in match.groups())
    if theirs not in iqms:
        return block
    _, *ci = iqms[theirs]
    lines = [f"- {_placed(iqm, tuple(ci), iqms[theirs][0], name, label_theirs, note)}"
             for name, (iqm, _, _) in iqms.items() if name != theirs]
    first = next((i for i, line in enumerate(block[:head]) if line.startswith("- ")), None)
    if first is None or block[first].startswith("- published"):  # no speed bullets: a bullet run of their own
        at = first if first is not None else head
        return [*block[:at], *lines, "", *block[at:]]
    end = next((i for i in range(first, len(block)) if not block[i].startswith("- ")), len(block))
    return [*block[:end], *lines, *block[end:]]


def cpu_ratio(r: dict) -> str:
    """The CPU-time steps/s ratio of ratio_lines for a table cell ('—' where a side has no run that kept it),
    saying over how many runs where some did not keep it."""
    if not r.get("steps_per_cpu_s"):
        return "—"
    n_ours, of_ours, n_theirs, of_theirs = r.get("cpu_runs") or (1, 1, 1, 1)
    part = "" if (n_ours, n_theirs) == (of_ours, of_theirs) else \
        f" (the runs that recorded CPU time: {n_ours} of {of_ours} and {n_theirs} of {of_theirs})"
    return f"{r['steps_per_cpu_s']:.2f}×{part}"


@contextmanager
def report_lock(path):
    """An exclusive lock on a sidecar of report PATH (.NAME.lock), held by every writer of that report: two
    processes reading and rewriting one file at the same moment would otherwise drop each other's update."""

    path = Path(path)
    with open(path.with_name(f".{path.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def runs_section(title: str, results: dict[str, list[dict]], max_return: float | None, figure: Path, label: str,
                 figure_title: str, preamble: list[str] = ()) -> list[str]:
    """A benchmark section for one env: heading, PREAMBLE lines, the aggregate and per-seed tables, and the
    curves of every run (all labelled LABEL) written to FIGURE.png and linked."""

    lines = [f"## {title}", "", *preamble]
    lines += aggregate_table(results, max_return) + per_seed_table(results)
    labels = {s["run_dir"]: label for runs in results.values() for s in runs}
    paths = plot_curves(list(labels), figure, labels=labels, title=figure_title).paths
    return lines + [f"![{title.split(' (')[0]}]({paths[0].name})", ""]


# A report whose sections are regenerated one at a time (a benchmark that runs for hours writes each
# section as it finishes; a later invocation for one section keeps the others' text).
def read_sections(path) -> dict[str, list[str]]:
    path = Path(path)
    text = path.read_text() if path.exists() else ""
    done = {}
    for part in text.split("\n<!-- section: ")[1:]:
        name, _, body = part.partition(" -->\n")
        done[name] = body.rstrip("\n").split("\n")
    return done


def kept_block(section: list[str], heading: str, note: str) -> list[str]:
    """One block of a published section, from the line starting with `heading` to the next heading, with
    `note` (why it is shown as published) under its heading once; [] if the section has no such block."""
    starts = [i for i, line in enumerate(section) if line.startswith(heading)]
    if not starts:
        return []
    end = next((i for i in range(starts[0] + 1, len(section)) if section[i].startswith("#")), len(section))
    block = section[starts[0]:end]
    return block if note in block else [block[0], "", note, *block[1:]]


def stamped(section: list[str], command: str, seeds=None) -> list[str]:
    """A section of a report whose sections are regenerated separately: its own command, date and float path
    under its title (the page's header names the whole script)."""
    path = float_path()
    if path != "native":
        command = f"{path} {command}"
    stamp = f"*This section: `{command}` · {dt.date.today().isoformat()} · float path: {path}"
    stamp += f" · seeds {list(seeds)}*" if seeds is not None else "*"
    return [*section[:1], "", stamp, *section[1:]]


def pending_note(lines: list[str], at: int, pending: list[str], total: int) -> list[str]:
    """A section published before all its cells have run: `lines` with, at index `at`, which cells are
    still to come (a benchmark of many CPU-hours spans sessions; what finished is reported as it finishes)."""
    note = (f"**In progress: {total - len(pending)} of {total} cells finished.** Not yet run: {', '.join(pending)} "
            "(re-running this section's command reuses the finished runs and resumes the open one).")
    return [*lines[:at], note, "", *lines[at:]]


def write_section(path, head: list[str], name: str, section, order) -> None:
    """Replace one section of a sectioned report. The file is read again right here, not when the
    script started: two benchmark processes working on different sections of one report (hours
    apart) must not erase each other's finished sections. Written atomically. `section` is the lines,
    or a function making them, called under the lock: two processes sharing one section (a benchmark
    grid) each render it from what is on disk then, so a slower render cannot overwrite a newer one."""

    path = Path(path)
    # Read and write under a lock on a sidecar file: two processes finishing sections at the same moment
    # would otherwise both read the old file and the later write would drop the other's section.
    with report_lock(path):
        done = read_sections(path)
        done[name] = section() if callable(section) else section
        lines = list(head)
        # sections this caller does not know (a newer script's, written while an older process runs) are kept
        for key in [*[k for k in order if k in done], *[k for k in done if k not in order]]:
            body = list(done[key])
            while body and not body[-1].strip():  # one blank line between sections, however a section ends
                body.pop()
            lines += [f"<!-- section: {key} -->", *body, ""]
        atomic_write_text(path, "\n".join(lines).rstrip("\n") + "\n")



def report_folder(results, name: str) -> Path:
    """RESULTS/NAME: the folder of one report, its README.md and its figures side by side (made as needed)."""
    folder = Path(results) / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder
