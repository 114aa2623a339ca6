"""The front page of results/: one table of rlsuite against SB3 across every environment family, read
from the reports' own tables, then a link to every report.

The page is derived, never edited: `rlsuite bench --index` rewrites it, and so does every benchmark that
publishes a report or a section of one. Each cell comes from the first report that has it, in the order of
SOURCES (the 10-seed classic-control grid before the older single-agent reports)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from rlsuite.experiments.report import report_lock
from rlsuite.run.rundir import atomic_write_text

TITLE = "# rlsuite vs Stable-Baselines3"
SOURCES = ("matrix", "continuous", "pixels", "dqn", "pg")  # report folders the table reads, first wins
FAMILIES = (("MinAtar/", "MinAtar"), ("ALE/", "Atari"), ("Atari", "Atari"), ("Hopper", "MuJoCo"),
            ("HalfCheetah", "MuJoCo"), ("Walker2d", "MuJoCo"), ("Ant", "MuJoCo"), ("Humanoid", "MuJoCo"))
FAMILY_ORDER = ("classic control", "MinAtar", "Atari", "MuJoCo")
HEADING = re.compile(r"^#{2,3} (?P<agent>[A-Za-z0-9]+) on (?P<env>Atari \w+|[^\s,(]+)[ ,(]")
INTERVAL = re.compile(r"^(?P<iqm>-?[\d,.]+) \[(?P<lo>-?[\d,.]+), (?P<hi>-?[\d,.]+)\]$")
RATIO = re.compile(r"median steps/s \**(?P<wall>[\d.]+)×")
CPU_RATIO = re.compile(r"per CPU second[^:]*: \**(?P<cpu>[\d.]+)×")


@dataclass
class Side:
    stays: str  # "k/n", or "—" where the env has no threshold
    iqm: float | None
    ci: tuple[float, float] | None
    steps_per_s: float | None = None


@dataclass
class Cell:
    family: str
    agent: str
    env: str
    seeds: int
    ours: Side
    sb3: Side
    wall_ratio: float | None
    cpu_ratio: float | None
    source: str  # the report folder it was read from


def family_of(env: str) -> str:
    return next((name for prefix, name in FAMILIES if prefix in env), "classic control")


def number(text: str) -> float | None:
    try:
        return float(text.replace(",", "").replace("*", "").strip())
    except ValueError:
        return None


def interval(text: str) -> tuple[float | None, tuple[float, float] | None]:
    m = INTERVAL.match(text.strip())
    if not m:
        return number(text), None
    return number(m["iqm"]), (number(m["lo"]), number(m["hi"]))


def table_rows(lines: list[str], start: int) -> tuple[list[str], list[list[str]], int]:
    """The markdown table starting at lines[start]: (header cells, rows of cells, the index after it)."""
    head = [c.strip() for c in lines[start].strip().strip("|").split("|")]
    rows, i = [], start + 2
    while i < len(lines) and lines[i].startswith("|"):
        rows.append([c.strip() for c in lines[i].strip().strip("|").split("|")])
        i += 1
    return head, rows, i


def verdict(ours: Side, theirs: Side) -> str:
    """Where rlsuite's IQM lies against SB3's 95% interval: inside, above or below (by how much)."""
    if ours.iqm is None or theirs.ci is None:
        return "—"
    lo, hi = theirs.ci
    if ours.iqm > hi:
        return f"above (+{ours.iqm - hi:,.1f})"
    if ours.iqm < lo:
        return f"**below** (−{lo - ours.iqm:,.1f})"
    return "inside"


def cells_of(report: Path, source: str) -> list[Cell]:
    """Every rlsuite-vs-SB3 cell of one report: a section whose heading names AGENT on ENV and whose aggregate
    table has an rlsuite and an sb3 row, or a grid table with both sides' IQMs per row."""
    lines = report.read_text(encoding="utf-8").splitlines()
    cells, heading, section_lines, stated = [], None, [], {}
    for i, line in enumerate(lines):
        if line.startswith(("## ", "### ")):
            m = HEADING.match(line)
            heading = m if m and "precision=" not in line and "SB3's actor" not in line else None
            section_lines = []
            continue
        section_lines.append(line)
        if not line.startswith("| ") or (i + 1 < len(lines) and not lines[i + 1].startswith("|---")):
            continue
        head, rows, _ = table_rows(lines, i)
        if head[:3] == ["implementation", "solved", "stays solved"] and heading is not None:
            sides = {r[0]: r for r in rows}
            if "rlsuite" not in sides or "sb3" not in sides:
                continue
            col = head.index("IQM final [95% CI]")

            def side(r):
                iqm, ci = interval(r[col])
                return Side(r[2], iqm, ci, number(r[-1]))

            ours, sb3 = side(sides["rlsuite"]), side(sides["sb3"])
            text = "\n".join(section_lines + lines[i:i + len(rows) + 8])
            wall = RATIO.search(text)
            cpu = CPU_RATIO.search(text)
            n = int(sides["rlsuite"][2].split("/")[1]) if "/" in sides["rlsuite"][2] else len(rows)
            wall_ratio = float(wall["wall"]) if wall else (
                ours.steps_per_s / sb3.steps_per_s if ours.steps_per_s and sb3.steps_per_s else None)
            env = heading["env"]
            cells.append(Cell(family_of(env), heading["agent"].upper(), env, n, ours, sb3, wall_ratio,
                              float(cpu["cpu"]) if cpu else None, source))
        elif head[0] == "implementation" and head[1].startswith("final (") and heading is not None:
            sides = {r[0]: r for r in rows}  # one seed per side: a final, no interval
            if "rlsuite" in sides and "sb3" in sides:
                ours, sb3 = (Side("—", number(sides[k][1]), None, number(sides[k][-1])) for k in ("rlsuite", "sb3"))
                ratio = ours.steps_per_s / sb3.steps_per_s if ours.steps_per_s and sb3.steps_per_s else None
                env = heading["env"]
                cells.append(Cell(family_of(env), heading["agent"].upper(), env, 1, ours, sb3, ratio, None, source))
        elif {"agent", "env", "steps/s ratio"} <= set(head):  # a grid's own summary: its stated ratios win
            for r in rows:
                row = dict(zip(head, r))
                stated[row["agent"].upper(), row["env"]] = number(row["steps/s ratio"].rstrip("×"))
        elif "rlsuite IQM final [95% CI]" in head and "SB3 IQM final [95% CI]" in head:
            seeds = re.search(r"Seeds \[([\d, ]+)\]", "\n".join(section_lines))
            n = len(seeds[1].split(",")) if seeds else 0
            for r in rows:
                row = dict(zip(head, r))
                iqm, ci = interval(row["rlsuite IQM final [95% CI]"])
                siqm, sci = interval(row["SB3 IQM final [95% CI]"])
                env = row.get("game") or row.get("env", "?")
                cells.append(Cell(family_of(env), row.get("agent", "?").upper(), env, n, Side("—", iqm, ci),
                                  Side("—", siqm, sci), number(row.get("steps/s ratio", "").rstrip("×")),
                                  number(row.get("CPU steps/s ratio", "").rstrip("×")), source))
    for cell in cells:
        if stated.get((cell.agent, cell.env)) is not None:
            cell.wall_ratio = stated[cell.agent, cell.env]
    return cells


def fmt_side(side: Side) -> str:
    if side.iqm is None:
        return "—"
    ci = f" [{side.ci[0]:,.1f}, {side.ci[1]:,.1f}]" if side.ci else ""
    return f"{side.iqm:,.1f}{ci}"


def fmt_ratio(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}×"


def title_of(report: Path) -> str:
    first = report.read_text(encoding="utf-8").split("\n", 1)[0]
    return first.lstrip("# ").strip() or report.parent.name


def summary_lines(results: Path) -> list[str]:
    """The page: the table of every cell the reports hold, then every report with its link."""
    results = Path(results)
    seen, cells = set(), []
    for source in SOURCES:
        report = results / source / "README.md"
        if not report.exists():
            continue
        for cell in cells_of(report, source):
            if (cell.agent, cell.env) not in seen:
                seen.add((cell.agent, cell.env))
                cells.append(cell)
    cells.sort(key=lambda c: FAMILY_ORDER.index(c.family) if c.family in FAMILY_ORDER else len(FAMILY_ORDER))
    lines = [TITLE, "",
             "Written by `rlsuite bench --index` from the reports below (each names its command, machine, versions "
             "and seeds). The final evaluation with the deterministic policy (20 episodes; 10 games on Atari; see the "
             "[protocol](../docs/protocol.md)). "
             "*stays solved*: final evaluation ≥ the env's threshold (— where there is none). IQM of the final "
             "returns with its 95% bootstrap interval; *verdict*: rlsuite's IQM against SB3's interval. Ratios: "
             "rlsuite / SB3 steps per second of wall clock and per CPU second of the training process (higher is "
             "faster; — where the report has none).", "",
             "| family | agent | env | seeds | stays solved, rlsuite vs SB3 | rlsuite IQM [95% CI] | SB3 IQM [95% CI] "
             "| verdict | steps/s ratio | CPU ratio | report |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in cells:
        stays = "—" if c.ours.stays == "—" else f"{c.ours.stays} vs {c.sb3.stays}"
        lines.append(f"| {c.family} | {c.agent} | {c.env} | {c.seeds} | {stays} | {fmt_side(c.ours)} | "
                     f"{fmt_side(c.sb3)} | {verdict(c.ours, c.sb3)} | {fmt_ratio(c.wall_ratio)} | "
                     f"{fmt_ratio(c.cpu_ratio)} | [{c.source}]({c.source}/README.md) |")
    lines += ["", "## Reports", ""]
    for report in sorted(results.glob("*/README.md")) + sorted(results.glob("*/*/README.md")):
        if "run-records" in report.parts or report.parent.parent.name == "tune_cards":
            continue
        rel = report.relative_to(results)
        stamp = next((line for line in report.read_text(encoding="utf-8").splitlines() if line.startswith("Date:")), "")
        date = stamp.split("·")[0].removeprefix("Date:").strip()
        lines.append(f"- {rel.parent.as_posix()}: [{title_of(report)}]({rel.as_posix()})" + (f" ({date})" if date else ""))
    if (results / "tune_cards").is_dir():
        lines.append("- [The studies behind the tuned cards](tune_cards/): `rlsuite tune show results/tune_cards/STUDY`")
    return lines + [""]


def write_summary(results) -> Path:
    """Rewrite RESULTS/README.md from the reports in RESULTS, under the page's lock."""
    page = Path(results) / "README.md"
    with report_lock(page):
        atomic_write_text(page, "\n".join(summary_lines(Path(results))))
    return page
