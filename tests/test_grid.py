"""Benchmark grids that span processes: a second process takes some cells, each reports all finished ones."""

import json
from functools import partial
from pathlib import Path

import pytest

from rlsuite.experiments import compare

from rlsuite import runs
from rlsuite.experiments.grid import check_rows, fill_grid, kept_if_gone, mine, train_rows
from rlsuite.core.errors import UserError
from rlsuite.experiments.report import kept_block
from rlsuite.run.rundir import RunBusy, RunLock, restore_records, save_record


def test_a_cell_filter_takes_agents_env_ids_or_pairs():
    key = ("ppo", "MinAtar/Breakout-v1")
    assert mine(key, None) and mine(key, "")
    assert mine(key, "ppo") and mine(key, "dqn, ppo") and mine(key, "MinAtar/Breakout-v1")
    assert mine(key, "ppo:MinAtar/Breakout-v1")
    assert not mine(key, "dqn") and not mine(key, "ppo:MinAtar/Asterix-v1") and not mine(key, "pp")


def _fake_job(calls, name, out, lock=None, **_):
    calls.append(name)
    d = out / "runs" / name
    d.mkdir(parents=True, exist_ok=True)
    summary = {"name": name}
    (d / "summary.json").write_text(json.dumps(summary))
    return summary


def test_finished_looks_without_training_and_only_at_runs_with_the_same_settings(tmp_path):
    calls = []
    job = partial(_fake_job, calls)
    stamp = {"agent": "ppo", "config": {"lr": 1e-3}}
    variants = {"rlsuite": (job, stamp), "sb3": (job, {"agent": "sb3-ppo", "steps": 10})}
    assert compare.finished("E-v0", [0, 1], tmp_path, variants) is None
    assert not (tmp_path / "runs").exists()  # looking creates nothing
    compare.side_by_side("E-v0", [0], tmp_path, variants)
    assert compare.finished("E-v0", [0, 1], tmp_path, variants) is None  # seed 1 has not run
    got = compare.finished("E-v0", [0], tmp_path, variants)
    assert got == {"rlsuite": [{"name": "rlsuite-E-v0-s0"}], "sb3": [{"name": "sb3-E-v0-s0"}]}
    assert runs.finished_summary(tmp_path, "rlsuite-E-v0-s0", {**stamp, "config": {"lr": 3e-4}}) is None  # stale
    assert len(calls) == 2


def test_a_row_filter_trains_only_those_rows_and_shows_the_cell_once_all_rows_are_done(tmp_path):
    calls = []
    job = partial(_fake_job, calls)
    variants = {"rlsuite": (job, {"a": 1}), "sb3": (job, {"b": 2}), "rlsuite-bf16": (job, {"c": 3})}
    assert train_rows("E-v0", [0, 1], tmp_path, variants, "rlsuite-bf16") is None  # the other rows are owed
    assert calls == ["rlsuite-bf16-E-v0-s0", "rlsuite-bf16-E-v0-s1"]
    assert train_rows("E-v0", [0, 1], tmp_path, {"rlsuite": variants["rlsuite"]}, "rlsuite-bf16") is None
    assert len(calls) == 2  # a cell without the row trains nothing
    got = train_rows("E-v0", [0, 1], tmp_path, variants, None)  # the rest, the bf16 runs reused
    assert len(calls) == 6 and [s["name"] for s in got["rlsuite-bf16"]] == calls[:2]
    assert train_rows("E-v0", [0, 1], tmp_path, variants, "sb3") == got and len(calls) == 6  # all done: the cell
    check_rows("sb3, rlsuite-bf16", list(variants))
    with pytest.raises(UserError, match="--rows bf16 names no row of these cells; use rlsuite, sb3, rlsuite-bf16"):
        check_rows("bf16", list(variants))


def test_a_cell_whose_rows_are_owed_by_another_process_goes_on_with_its_other_runs(tmp_path):
    # Process B holds the bf16 run of seed 1: process A must not stop at it and leave the cell's later seeds
    # to no one (B trains only its rows).
    calls = []
    job = partial(_fake_job, calls)
    variants = {"rlsuite": (job, {"a": 1}), "rlsuite-bf16": (job, {"c": 3})}
    (tmp_path / "runs" / "rlsuite-bf16-E-v0-s0").mkdir(parents=True)
    with RunLock(tmp_path / "runs" / "rlsuite-bf16-E-v0-s0"):
        with pytest.raises(RunBusy, match="rlsuite-bf16-E-v0-s0 is in use"):
            train_rows("E-v0", [0, 1], tmp_path, variants, None)
    assert calls == ["rlsuite-E-v0-s0", "rlsuite-E-v0-s1", "rlsuite-bf16-E-v0-s1"]


def test_a_cell_trained_here_in_part_is_shown_once_another_process_finishes_it():
    # A process that trained only some rows of a cell shows it once the other process has finished it on
    # disk, not "not yet run".
    on_disk = {}
    section = fill_grid(["a"], ["a"], lambda key: None, on_disk.get, lambda key, r: ([f"| {r} |"], []),
                        ["## G", "| x |"], 1)
    assert "Not yet run: a" in section()[1]
    on_disk["a"] = "A done"
    assert section() == ["## G", "| x |", "| A done |", ""]


def test_a_second_process_takes_some_cells_and_every_publish_shows_all_finished_cells(tmp_path):
    trained, published = [], []
    on_disk = {}  # what peek finds finished

    def train(key):
        if key == "c":
            raise RunBusy("c is in use by pid 1")  # another live process is training it
        trained.append(key)
        on_disk[key] = f"{key.upper()} trained here"
        return on_disk[key]

    def render(key, result):
        return [f"| {result} |"], [f"fig {key}"]

    head = ["## Grid", "", "intro", "", "| result |", "|---|"]
    cells = ["a", "b", "c", "d"]
    section = fill_grid(cells, ["d", "c", "b", "a"], train, on_disk.get, render, head, 4,
                        lambda k: k.upper(), published.append)()
    assert trained == ["a", "b", "d"]  # c was busy: skipped, not waited for
    assert len(published) == 3
    assert "Not yet run: C" in section[4] and "3 of 4" in section[4]
    assert section[6:] == ["| result |", "|---|", "| D trained here |", "| B trained here |", "| A trained here |",
                           "", "fig d", "fig b", "fig a", ""]


def test_a_cell_whose_busy_run_finished_meanwhile_is_published_by_the_process_that_ends_it():
    """Two processes on one cell: A held run r1 when B started the cell, so B skipped r1, trained r2 and ended in
    RunBusy; A had finished r1 by then and skipped r2 (B's). One of them must publish the finished cell."""
    published, on_disk = [], {}

    def train(key):  # B: trains r2; r1 was busy when it looked, and has since finished in A
        on_disk[key] = "done by both"
        raise RunBusy("r1 is in use by pid 1")

    fill_grid(["a"], ["a"], train, on_disk.get, lambda key, r: ([f"| {r} |"], []), ["## G"], 1,
              publish=lambda section: published.append(section()))
    assert published == [["## G", "| done by both |", ""]]


def test_cells_outside_the_filter_are_reported_only_once_finished(tmp_path):
    trained, published = [], []
    on_disk = {}

    def train(key):
        trained.append(key)
        on_disk[key] = key
        return key

    render = lambda key, result: ([f"| {result} |"], [])  # noqa: E731
    cells = [("dqn", "E"), ("ppo", "E"), ("ppo", "F")]
    render_section = fill_grid(cells, cells, train, on_disk.get, render, ["## G", "| x |"], 1,
                               lambda k: f"{k[0]} {k[1]}", published.append, only="ppo")
    section = render_section()
    assert trained == [("ppo", "E"), ("ppo", "F")]
    assert "Not yet run: dqn E" in section[1] and "2 of 3" in section[1]
    on_disk[("dqn", "E")] = ("dqn", "E")  # the other process finishes its cell: rendered again, all three show
    assert not any("In progress" in line for line in render_section()) and len(render_section()) == 6
    # what is published is the rendering itself, called under the report's lock: it sees the newest disk
    assert published[0] is render_section


def test_a_run_locked_by_another_process_makes_its_cell_skipped_not_retrained(tmp_path):
    calls = []
    job = partial(_fake_job, calls)
    variants = {"rlsuite": (job, {"agent": "ppo"})}
    (tmp_path / "runs" / "rlsuite-E-v0-s0").mkdir(parents=True)
    with RunLock(tmp_path / "runs" / "rlsuite-E-v0-s0"):  # as another process training it holds it
        with pytest.raises(RunBusy):
            compare.side_by_side("E-v0", [0], tmp_path, variants)
        section = fill_grid(["E-v0"], ["E-v0"], lambda e: compare.side_by_side(e, [0], tmp_path, variants),
                            lambda e: compare.finished(e, [0], tmp_path, variants),
                            lambda e, r: ([f"| {e} |"], []), ["## G", "| x |"], 1)()
    assert calls == [] and "Not yet run: E-v0" in section[1]


def test_a_cell_filter_that_names_no_cell_is_refused_in_one_line():
    from rlsuite.core.errors import UserError

    cells = [("dqn", "MinAtar/Breakout-v1"), ("ppo", "MinAtar/Breakout-v1")]
    trained = []
    with pytest.raises(UserError, match=r"--cells PPO, Breakout names no cell; use agents, env ids or agent:env_id "
                                        r"from dqn, ppo, MinAtar/Breakout-v1"):
        fill_grid(cells, cells, trained.append, lambda k: None, lambda k, r: ([], []), [], 0, only="ppo,PPO,Breakout")
    assert trained == []


def test_a_finished_run_whose_summary_cannot_be_read_is_reported_never_deleted(tmp_path):
    """A regression of the refactor: reuse_or_train must not treat an unreadable summary as 'not finished'
    (the run is complete, not resumable, and would be wiped and retrained)."""
    from rlsuite.core.errors import UserError

    calls = []
    job = partial(_fake_job, calls)
    stamp = {"agent": "ppo"}
    runs.reuse_or_train(tmp_path, "r", partial(job, out=tmp_path), fingerprint=stamp)
    (tmp_path / "runs" / "r" / "summary.json").write_text("{trunc")
    with pytest.raises(UserError, match="summary.json cannot be read .*; restore it, or delete the run directory"):
        runs.reuse_or_train(tmp_path, "r", partial(job, out=tmp_path), fingerprint=stamp)
    assert calls == ["r"] and (tmp_path / "runs" / "r" / "summary.json").read_text() == "{trunc"
    assert runs.finished_summary(tmp_path, "r", stamp) is None  # looking only: not finished, nothing raised


def test_looking_at_a_run_being_redone_does_not_fail(tmp_path, monkeypatch):
    """The other process may delete fingerprint.json between our exists() and read (a stale run redone)."""
    from pathlib import Path

    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    (run / "summary.json").write_text("{}")
    real = Path.read_text

    def vanishing(self, *a, **k):
        if self.name == "fingerprint.json":
            raise FileNotFoundError(2, "No such file or directory")
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "read_text", vanishing)
    (run / "fingerprint.json").write_text("{}")
    assert runs.finished_summary(tmp_path, "r", {"agent": "ppo"}) is None


def test_a_grid_section_is_rendered_under_the_report_lock(tmp_path):
    """Two processes publishing one grid: the one that renders later must also write later, so each
    renders while it holds the report's lock (a stale render cannot overwrite a newer one)."""
    import fcntl

    from rlsuite.experiments.report import read_sections, write_section

    path = tmp_path / "r.md"
    seen = []

    def render():
        with open(tmp_path / ".r.md.lock", "w") as other:
            try:
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
                seen.append("unlocked")
            except BlockingIOError:
                seen.append("locked")
        return ["## Grid", "row"]

    write_section(path, ["# R"], "grid", render, ("grid",))
    assert seen == ["locked"] and read_sections(path) == {"grid": ["## Grid", "row"]}


def _finished_runs(tmp_path, calls):
    """Two finished runs of one cell, trained through the real reuse path (fingerprints written)."""
    job = partial(_fake_job, calls)
    variants = {"rlsuite": (job, {"agent": "sac"}), "sb3": (job, {"agent": "sb3-sac"})}
    out = tmp_path / "runs" / "grid" / "sac"
    got = compare.side_by_side("E-v0", [0], out, variants)
    return variants, out, got


def test_a_fresh_checkout_restores_finished_runs_from_their_records_and_does_not_retrain_them(tmp_path):
    """Before records, a session on a fresh checkout (results/runs/ is not committed) retrained every finished
    run of a grid of many CPU-hours."""
    import shutil

    calls = []
    variants, out, got = _finished_runs(tmp_path, calls)
    for v in got.values():
        for s in v:
            s["run_dir"] = str(out / "runs" / s["name"])  # as the engine writes it
            (out / "runs" / s["name"] / "summary.json").write_text(json.dumps(s))
    (out / "runs" / "rlsuite-E-v0-s0" / "metrics.csv").write_text("step,wall_s\n10,0.5\n")
    (out / "runs" / "rlsuite-E-v0-s0" / "checkpoints").mkdir()
    (out / "runs" / "rlsuite-E-v0-s0" / "checkpoints" / "last.pt").write_bytes(b"x" * 1000)
    (out / "runs" / "open-E-v0-s1").mkdir()  # unfinished: no record
    records = tmp_path / "records"
    for name in ("rlsuite-E-v0-s0", "sb3-E-v0-s0"):
        assert save_record(out / "runs" / name, tmp_path / "runs", records) is not None
    assert save_record(out / "runs" / "open-E-v0-s1", tmp_path / "runs", records) is None
    kept = sorted(p.relative_to(records).as_posix() for p in records.rglob("*") if p.is_file())
    assert kept == [f"grid/sac/runs/{n}/{f}" for n in ("rlsuite-E-v0-s0", "sb3-E-v0-s0")
                    for f in ("fingerprint.json", *(("metrics.csv",) if n.startswith("rlsuite") else ()), "summary.json")]

    shutil.rmtree(tmp_path / "runs")  # the fresh checkout
    fresh = tmp_path / "elsewhere"
    restored = restore_records(records, fresh)
    assert sorted(p.name for p in restored) == ["rlsuite-E-v0-s0", "sb3-E-v0-s0"]
    moved = fresh / "grid" / "sac"
    again = compare.side_by_side("E-v0", [0], moved, variants)
    assert len(calls) == 2  # reused, not retrained
    assert again["rlsuite"][0]["run_dir"] == str(moved / "runs" / "rlsuite-E-v0-s0")  # plots find the curve here
    assert (moved / "runs" / "rlsuite-E-v0-s0" / "metrics.csv").read_text() == "step,wall_s\n10,0.5\n"
    assert restore_records(records, fresh) == []  # finished here now: left alone


def test_restoring_records_never_touches_an_open_or_locked_run(tmp_path):
    calls = []
    variants, out, got = _finished_runs(tmp_path, calls)
    records = tmp_path / "records"
    for name in ("rlsuite-E-v0-s0", "sb3-E-v0-s0"):
        save_record(out / "runs" / name, tmp_path / "runs", records)
    fresh = tmp_path / "fresh" / "grid" / "sac" / "runs"
    (fresh / "rlsuite-E-v0-s0" / "checkpoints").mkdir(parents=True)  # open here: it resumes, never overwritten
    (fresh / "sb3-E-v0-s0").mkdir(parents=True)
    with RunLock(fresh / "sb3-E-v0-s0"):  # another process is starting it
        assert restore_records(records, tmp_path / "fresh") == []
    assert not (fresh / "rlsuite-E-v0-s0" / "summary.json").exists()
    assert not (fresh / "sb3-E-v0-s0" / "summary.json").exists()


def test_a_cell_published_before_records_is_shown_as_published_and_not_retrained():
    """A fresh checkout keeps a published cell whose runs it lacks as published: it neither re-trains it nor
    shows it as "not yet run", which would erase its published numbers."""
    trained, on_disk = [], {}
    report = {"a": ["### A", "", "| old numbers |"]}

    def train(key):
        trained.append(key)
        on_disk[key] = f"{key} new"
        return on_disk[key]

    section = fill_grid(["a", "b"], ["a", "b"], train, on_disk.get, lambda key, r: ([f"| {r} |"], []), ["## G"], 1,
                        kept=lambda key: (report[key], []) if key in report else None)()
    assert trained == ["b"]
    assert section == ["## G", "### A", "", "| old numbers |", "| b new |", ""]  # not "in progress"
    on_disk["a"] = "a on disk"  # runs found again (a record restored): they win over the published block
    assert fill_grid(["a"], ["a"], on_disk.get, on_disk.get, lambda key, r: ([f"| {r} |"], []), ["## G"], 1,
                     kept=lambda key: (report[key], []))() == ["## G", "| a on disk |", ""]


def test_a_kept_block_runs_from_its_heading_to_the_next_and_is_marked_once():
    section = ["intro", "", "### SAC on H (budget)", "", "- ratio", "| t |", "", "![f](x.png)", "",
               "### PPO on H (budget)", "| p |"]
    block = kept_block(section, "### SAC on H (", "*kept*")
    assert block == ["### SAC on H (budget)", "", "*kept*", "", "- ratio", "| t |", "", "![f](x.png)", ""]
    assert kept_block(block, "### SAC on H (", "*kept*") == block  # marked once, however often it is kept
    assert kept_block(section, "### PPO on H (", "*kept*") == ["### PPO on H (budget)", "", "*kept*", "| p |"]
    assert kept_block(section, "### TD3 on H (", "*kept*") == []


def test_a_re_saved_record_cut_short_is_not_a_finished_run(tmp_path, monkeypatch):
    """A retrained run's record is rewritten file by file: a kill in the middle must not leave the new
    fingerprint beside the old summary, a record that would restore as finished with the old results."""
    from rlsuite.run import rundir

    calls = []
    variants, out, got = _finished_runs(tmp_path, calls)
    run = out / "runs" / "rlsuite-E-v0-s0"
    records = tmp_path / "records"
    for name in ("rlsuite-E-v0-s0", "sb3-E-v0-s0"):
        save_record(out / "runs" / name, tmp_path / "runs", records)
    (run / "fingerprint.json").write_text('{"new": 1}')  # the run was redone with other settings ...
    real = rundir.atomic_write_text

    def killed_after_fingerprint(path, text):
        real(path, text)
        if path.name == "fingerprint.json":
            raise KeyboardInterrupt  # ... and its process died while saving the new record

    monkeypatch.setattr(rundir, "atomic_write_text", killed_after_fingerprint)
    with pytest.raises(KeyboardInterrupt):
        save_record(run, tmp_path / "runs", records)
    monkeypatch.undo()
    assert restore_records(records, tmp_path / "fresh") == [tmp_path / "fresh" / "grid" / "sac" / "runs" / "sb3-E-v0-s0"]


def test_a_record_is_found_from_any_working_directory(tmp_path, monkeypatch):
    calls = []
    variants, out, got = _finished_runs(tmp_path, calls)
    monkeypatch.chdir(tmp_path / "runs")  # relative paths from here: the same run
    assert save_record(Path("grid/sac/runs/sb3-E-v0-s0"), Path("."), tmp_path / "records") == \
        tmp_path / "records" / "grid" / "sac" / "runs" / "sb3-E-v0-s0"


def test_run_records_are_not_git_ignored():
    """.gitignore's `runs/` must not hide the records (their paths hold a runs/ folder): else nothing is
    committed, and a fresh checkout restores nothing."""
    import shutil
    import subprocess

    root = Path(__file__).resolve().parents[1]
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("not a git checkout")
    record = "results/run-records/bench-continuous/sac/runs/rlsuite-Hopper-v5-s0/summary.json"
    assert subprocess.run(["git", "check-ignore", "-q", record], cwd=root).returncode == 1  # 1: not ignored
    assert subprocess.run(["git", "check-ignore", "-q", "results/runs/x/runs/y/summary.json"], cwd=root).returncode == 0


def test_a_published_block_stands_for_its_cell_only_while_none_of_its_runs_is_here(tmp_path):
    """A published block stands for its cell only while none of its runs is here: stale runs (settings
    changed), a missing seed or an open run are trained again."""
    runs_here = [tmp_path / "r-s0", tmp_path / "r-s1"]
    assert kept_if_gone(runs_here, ["### A", "| x |"]) == (["### A", "| x |"], [])
    assert kept_if_gone(runs_here, []) is None  # nothing published
    runs_here[1].mkdir()  # one run here, finished, stale or open: the grid's to train and show
    assert kept_if_gone(runs_here, ["### A", "| x |"]) is None
