"""Run-directory integrity: one writer per run (lock, stale-lock takeover), signals end runs cleanly with
the right exit code, metrics.csv is never rewritten in place, checkpoints come by the minute, a full
disk ends in one line with the last good checkpoint intact, TensorBoard keeps the checkpoint step."""

import csv
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import TINY_DQN
from rlsuite import runs
from rlsuite.run.checkpoint import load_checkpoint
from rlsuite.core.errors import UserError
from rlsuite.run.rundir import RunBusy, RunLock, truncate_metrics

SLOW_DQN = {**TINY_DQN, "checkpoint_every": "200", "eval_every": "100000"}


def _cli(*args, **kw):
    """`rlsuite ...` in a real process (signals, exit codes), output not a terminal."""
    return subprocess.Popen([sys.executable, "-m", "rlsuite.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def _wait_for(predicate, timeout=60.0):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_second_writer_is_refused_naming_the_holder(tmp_path, tiny_run):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    with RunLock(run):
        with pytest.raises(RunBusy, match=rf"is in use by pid {os.getpid()} on .*; wait for it"):
            runs.resume(run, steps=2000, progress=False)
    # released: the same resume now goes through
    assert runs.resume(run, steps=700, progress=False)["steps"] >= 700


def test_a_lock_left_by_kill_9_is_taken_over(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from rlsuite.run.rundir import RunLock; "
                               f"RunLock({str(tmp_path)!r}).acquire(); print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(RunBusy, match=f"pid {holder.pid}"):
        RunLock(tmp_path).acquire()
    holder.kill()  # SIGKILL: no cleanup runs; the kernel drops the flock
    holder.wait()
    lock = RunLock(tmp_path).acquire()
    assert json.loads((tmp_path / "lock").read_text())["pid"] == os.getpid()
    lock.release()


def test_the_next_writer_removes_temporaries_a_killed_writer_left(tmp_path, tiny_run):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    left = [run / "checkpoints" / ".last.pt.99999.tmp", run / ".status.json.99999.tmp"]
    for path in left:
        path.write_bytes(b"x" * 1000)  # what kill -9 in the middle of a checkpoint write leaves
    runs.resume(run, steps=700, progress=False)
    assert not any(path.exists() for path in left)
    assert (run / "checkpoints" / "last.pt").exists()


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signals_checkpoint_mark_interrupted_and_exit_non_zero(tmp_path, sig, code):
    sets = [a for k, v in SLOW_DQN.items() for a in ("--set", f"{k}={v}")]
    proc = _cli("train", "dqn", "CartPole-v1", "--steps", 10**7, "--out", tmp_path, *sets)
    runs_dir = tmp_path / "runs"
    _wait_for(lambda: runs_dir.exists() and any((d / "checkpoints" / "last.pt").exists() for d in runs_dir.iterdir()))
    run_dir = next(runs_dir.iterdir())
    # while it trains, a resume is refused in one line naming the process
    second = _cli("train", "--resume", run_dir)
    out, err = second.communicate(timeout=60)
    assert second.returncode == 1 and f"in use by pid {proc.pid}" in err and "Traceback" not in err
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert f"stopped by {sig.name}" in out and "rlsuite train --resume" in out and "Traceback" not in err
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "interrupted" and status["signal"] == sig.name
    step = load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"]
    assert step == status["step"] > 0
    assert not (run_dir / "summary.json").exists()
    resumed = runs.resume(run_dir, steps=step + 400, progress=False)
    assert resumed["status"] == "complete" and resumed["steps"] >= step + 400


def test_progress_prints_plain_lines_when_not_a_terminal(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from rlsuite.run import engine
    from rlsuite.cli import main

    monkeypatch.setattr(engine, "PROGRESS_LINE_SECONDS", 0.0)
    sets = [a for k, v in TINY_DQN.items() for a in ("--set", f"{k}={v}")]
    result = CliRunner().invoke(main, ["train", "dqn", "CartPole-v1", "--steps", "600", "--out", str(tmp_path), *sets])
    assert result.exit_code == 0, result.output
    assert "[dqn CartPole-v1] step " in result.output and "/600 (" in result.output


def test_metrics_are_truncated_by_rename_never_in_place(tmp_path, monkeypatch):
    path = tmp_path / "metrics.csv"
    cols = ["step", "wall_s"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        w.writerows([[i, i] for i in range(10)])
    original = path.read_bytes()

    def killed(*a, **k):
        raise KeyboardInterrupt  # a kill in the middle of the rewrite

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        truncate_metrics(path, 7, cols)
    assert path.read_bytes() == original  # the old file is whole
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.csv"]  # no temporary left behind
    monkeypatch.undo()
    assert truncate_metrics(path, 7, cols) == 10
    assert len(list(csv.DictReader(open(path)))) == 7
    with pytest.raises(UserError, match="has 7 rows but the checkpoint was written after 9"):
        truncate_metrics(path, 9, cols)


def test_default_checkpoints_come_by_the_minute(tmp_path):
    from rlsuite.agents.dqn import DQNConfig

    cfg = DQNConfig()
    assert cfg.checkpoint_every is None and 0 < cfg.checkpoint_minutes <= 5  # loss bounded in minutes, any budget
    summary = runs.train("dqn", "CartPole-v1", steps=600, overrides={**TINY_DQN, "checkpoint_every": "none",
                                                                     "checkpoint_minutes": "0.0001"},
                         out=tmp_path, progress=False, stop_at=400)
    # with a 6 ms cadence every iteration checkpoints: the last one before the stop is at the stop step
    assert summary["status"] == "interrupted"
    assert load_checkpoint(Path(summary["run_dir"]) / "checkpoints" / "last.pt")["step"] == 400


@pytest.mark.parametrize("how", ["OSError", "RuntimeError"])  # torch's zip writer says RuntimeError
def test_full_disk_ends_in_one_line_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, how):
    import shutil

    import torch

    from rlsuite.run import checkpoint

    real_save, real_usage, calls = torch.save, shutil.disk_usage, []

    def save(obj, f):
        calls.append(f)
        if len(calls) > 1:
            Path(f).write_bytes(b"partial")  # the disk fills up in the middle of the second write
            if how == "RuntimeError":
                monkeypatch.setattr(checkpoint.shutil, "disk_usage", lambda p: real_usage(p)._replace(free=4096))
                raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f)

    monkeypatch.setattr(checkpoint.torch, "save", save)
    with pytest.raises(UserError, match=r"cannot write checkpoint .*last\.pt \(No space left on device\); the last "
                                        r"good checkpoint .*last\.pt is intact; free space"):
        runs.train("dqn", "CartPole-v1", steps=2000, overrides=dict(SLOW_DQN), out=tmp_path, progress=False)
    run_dir = next((tmp_path / "runs").iterdir())
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["last.pt"]  # no partial file
    assert json.loads((run_dir / "status.json").read_text())["status"] == "failed"
    monkeypatch.undo()  # space is back: the run resumes from its last good checkpoint and completes
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"] == 200
    assert runs.resume(run_dir, progress=False)["status"] == "complete"


def test_tensorboard_keeps_the_checkpoint_step_after_resume(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    overrides = {**TINY_DQN, "eval_every": "200", "checkpoint_every": "400"}
    stopped = runs.train("dqn", "CartPole-v1", steps=1200, overrides=overrides, out=tmp_path, progress=False, stop_at=400)
    runs.resume(stopped["run_dir"], progress=False)
    events = EventAccumulator(stopped["run_dir"])
    events.Reload()
    steps = [e.step for e in events.Scalars("eval/mean_return")]
    # each periodic evaluation once (none lost at the checkpoint step 400, none doubled), then the final one
    assert steps == [200, 400, 600, 800, 1000, 1200, 1200], steps


@pytest.mark.parametrize("agent", ["reinforce", "dqn"])
def test_resume_without_env_state_drops_the_unfinished_episodes(tmp_path, monkeypatch, agent):
    """Box2D or Atari envs cannot be checkpointed, so a resume starts fresh episodes: what an agent kept of
    the old ones (REINFORCE's carried steps, DQN's open n-step windows) must go, not be glued to new ones."""
    from rlsuite.run import checkpoint
    from rlsuite.learn.replay import NStepAccumulator
    from rlsuite.learn.rollout import EpisodeCarry

    monkeypatch.setattr(checkpoint, "env_state", lambda envs: None)  # as for an env that is not plain data
    overrides = ({"num_envs": "2", "n_steps": "16", "eval_every": "1000", "final_eval_episodes": "1"}
                 if agent == "reinforce" else {**TINY_DQN, "n_step": "3"})
    stopped = runs.train(agent, "CartPole-v1", steps=600, overrides=overrides, out=tmp_path, progress=False, stop_at=40)
    state = load_checkpoint(Path(stopped["run_dir"]) / "checkpoints" / "last.pt")["state"]
    kept = (sum(len(r) for r in state["episodes"]["rewards"]) if agent == "reinforce"
            else sum(len(w) for w in state["nstep"]["pending"]))
    assert kept > 0  # the stop fell inside episodes: there was something to drop
    seen = []
    cls, method = (EpisodeCarry, "add") if agent == "reinforce" else (NStepAccumulator, "push")
    real = getattr(cls, method)

    def spy(self, *args, **kwargs):
        if not seen:
            seen.append(self.pending() if agent == "reinforce" else sum(len(w) for w in self.pending))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(cls, method, spy)
    runs.resume(stopped["run_dir"], progress=False)
    assert seen == [0]


def test_metrics_rows_after_the_checkpoint_step_are_refused(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("step,wall_s\n10,0.1\n900,0.2\n20,0.3\n")
    with pytest.raises(UserError, match="line 3 is corrupt or does not belong before the checkpoint"):
        truncate_metrics(path, 3, ["step", "wall_s"], max_step=500)


def test_a_finished_run_records_its_float_path(tiny_run):
    from rlsuite.run.rundir import float_path

    summary = json.loads((tiny_run / "summary.json").read_text())
    assert summary["float_path"] == float_path()  # trained in this process, under the same switches


def test_float_path_is_recorded_and_put_in_the_regenerate_command(monkeypatch):
    """A report made under another float path must say so, and its Regenerate line must select it again
    (before, cards.py knew two of the switches and the command line none)."""
    from rlsuite.experiments.report import header
    from rlsuite.run.rundir import float_path

    for var in ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR"):
        monkeypatch.delenv(var, raising=False)
    assert float_path() == "native"
    assert "Regenerate: `python b.py`" in "\n".join(header("t", "python b.py", [0]))
    monkeypatch.setenv("MKL_CBWR", "COMPATIBLE")
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "default")
    assert float_path() == "ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE"
    text = "\n".join(header("t", "python b.py", [0]))
    assert "Regenerate: `ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE python b.py`" in text
    assert "float path: ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE" in text


def test_a_sectioned_report_stamps_each_section_with_its_own_command(monkeypatch):
    """Sectioned reports are rewritten a section at a time: the page header must not carry the last
    section's command and seeds as if they covered every section."""
    from rlsuite.experiments.report import header, stamped

    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    monkeypatch.delenv("MKL_ENABLE_INSTRUCTIONS", raising=False)
    monkeypatch.setenv("MKL_CBWR", "COMPATIBLE")
    out = stamped(["## Title", "", "body"], "python b.py --sections x", [0, 1])
    assert out[0] == "## Title" and out[-1] == "body"
    assert "`MKL_CBWR=COMPATIBLE python b.py --sections x`" in out[2] and "seeds [0, 1]" in out[2]
    assert "Seeds: each section states its own" in "\n".join(header("t", "python b.py", None))


def test_two_report_writers_keep_each_others_sections(tmp_path):
    # Two benchmark processes regenerate different sections of one report, hours apart: writing back the
    # sections a writer read at its start would make the later writer erase the earlier one's section.
    from rlsuite.experiments.report import read_sections, write_section

    path, order = tmp_path / "r.md", ("a", "b", "c")
    write_section(path, ["# R"], "c", ["## C", "old"], order)
    write_section(path, ["# R"], "a", ["## A", "first process"], order)   # process 1 finishes section a
    write_section(path, ["# R"], "b", ["## B", "second process"], order)  # process 2 finishes section b later
    assert read_sections(path) == {"a": ["## A", "first process"], "b": ["## B", "second process"], "c": ["## C", "old"]}
    assert path.read_text().startswith("# R\n<!-- section: a -->")


def test_a_writer_that_does_not_know_a_section_keeps_it(tmp_path):
    # A long benchmark process started from an older script (sections a, b) publishes while a newer script
    # has added section n to the same report: the older writer keeps n on every publish.
    from rlsuite.experiments.report import read_sections, write_section

    path = tmp_path / "r.md"
    write_section(path, ["# R"], "n", ["## N", "newer script"], ("a", "n", "b"))
    write_section(path, ["# R"], "a", ["## A", "older process"], ("a", "b"))
    assert read_sections(path) == {"a": ["## A", "older process"], "n": ["## N", "newer script"]}


def test_republishing_a_report_leaves_it_byte_for_byte(tmp_path):
    # A benchmark process republishes finished sections at its start. Sections read back had lost their trailing
    # blank lines while freshly rendered ones kept theirs, so every restart changed the committed file's blank lines.
    from rlsuite.experiments.report import read_sections, write_section

    path, order = tmp_path / "r.md", ("a", "b")
    write_section(path, ["# R", ""], "a", ["## A", "row", "", ""], order)
    write_section(path, ["# R", ""], "b", ["## B", "row", ""], order)
    before = path.read_text()
    assert before == "# R\n\n<!-- section: a -->\n## A\nrow\n\n<!-- section: b -->\n## B\nrow\n"
    write_section(path, ["# R", ""], "a", ["## A", "row", ""], order)
    write_section(path, ["# R", ""], "b", read_sections(path)["b"], order)
    assert path.read_text() == before


def test_a_section_published_before_its_last_cell_names_the_cells_to_come():
    from rlsuite.experiments.report import pending_note

    lines = ["## T", "", "intro", "", "| table |", "| row |"]
    out = pending_note(lines, 4, ["PPO Hopper-v5", "SAC HalfCheetah-v5"], 6)
    assert out[:4] == lines[:4] and out[6:] == lines[4:]
    assert out[4].startswith("**In progress: 4 of 6 cells finished.** Not yet run: PPO Hopper-v5, SAC HalfCheetah-v5")


def test_runs_keep_their_cpu_time_across_a_resume_and_reports_use_it(tmp_path):
    """Steps per CPU second of the training process: a ratio other load on a shared machine does not skew."""
    import json

    import torch

    from conftest import TINY_DQN
    from rlsuite import runs
    from rlsuite.experiments.report import cpu_ratio, ratio_lines

    first = runs.train("dqn", "CartPole-v1", seed=0, steps=900, overrides=dict(TINY_DQN), out=tmp_path,
                       progress=False, stop_at=500)
    run_dir = Path(first["run_dir"])
    ckpt = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["engine"]["cpu_s"] > 0
    summary = runs.resume(run_dir, progress=False)
    assert summary["cpu_s"] > ckpt["engine"]["cpu_s"] and summary["steps_per_cpu_s"] == 900 / summary["cpu_s"]
    assert summary["cpu_s"] <= summary["wall_s"] * 1.5  # one thread: CPU time does not run ahead of the clock
    other = {**summary, "steps_per_s": summary["steps_per_s"] / 4, "steps_per_cpu_s": summary["steps_per_cpu_s"] / 2}
    r = ratio_lines([summary], [other], "a", "b")
    assert r["steps_per_s"] == pytest.approx(4) and r["steps_per_cpu_s"] == pytest.approx(2) and cpu_ratio(r) == "2.00×"
    # a run resumed from a checkpoint written before CPU time was kept: unknown, never a partial count
    old = dict(summary, steps_per_cpu_s=None)
    assert ratio_lines([old], [other], "a", "b")["steps_per_cpu_s"] is None and cpu_ratio(ratio_lines([old], [other], "a", "b")) == "—"
    # one side's run made before CPU time was recorded: the ratio stands on the others, and says so
    # (before, one such run left the whole cell at "—": SAC Hopper-v5 in results/continuous.md)
    r = ratio_lines([old, summary], [other, other], "a", "b")
    assert r["steps_per_cpu_s"] == pytest.approx(2)
    assert cpu_ratio(r) == "2.00× (the runs that recorded CPU time: 1 of 2 and 2 of 2)"
    (run_dir / "summary.json").unlink()
    ckpt["engine"].pop("cpu_s")
    torch.save(ckpt, run_dir / "checkpoints" / "last.pt")
    (run_dir / "status.json").write_text(json.dumps({"status": "interrupted", "step": ckpt["step"]}))
    assert runs.resume(run_dir, progress=False)["cpu_s"] is None


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_second_signal_aborts_with_the_signals_code_naming_the_run(tmp_path, monkeypatch, sig, code):
    from click.testing import CliRunner

    from rlsuite.cli import main
    from rlsuite.run.population import Population

    original = Population.after_iteration

    def twice(self, step, *args, **kwargs):
        if step >= 200:  # the first asks for a clean stop; the second, before it is done, aborts
            os.kill(os.getpid(), sig)
            os.kill(os.getpid(), sig)
        return original(self, step, *args, **kwargs)

    monkeypatch.setattr(Population, "after_iteration", twice)
    sets = [a for k, v in SLOW_DQN.items() for a in ("--set", f"{k}={v}")]
    result = CliRunner().invoke(main, ["train", "dqn", "CartPole-v1", "--steps", "5000", "--out", str(tmp_path), *sets])
    run_dir = next((tmp_path / "runs").iterdir())
    assert result.exit_code == code, result.output
    assert f"aborted by a second {sig.name}; {run_dir}" in result.output and "Traceback" not in result.output
    assert json.loads((run_dir / "status.json").read_text())["status"] == "interrupted"


@pytest.mark.parametrize("name", ["checkpoints", "lock", "metrics.csv"])
def test_a_resume_refuses_a_run_directory_whose_files_are_links(tmp_path, name):
    """A run directory someone hands you with `checkpoints -> elsewhere` made `train --resume` write its
    checkpoint there (and a linked lock file was truncated); now the writer refuses in one line and the link's
    target is untouched."""
    import shutil

    from click.testing import CliRunner

    from rlsuite.cli import main

    sets = [a for k, v in TINY_DQN.items() for a in ("--set", f"{k}={v}")]
    assert CliRunner().invoke(main, ["train", "dqn", "CartPole-v1", "--steps", "300", "--out", str(tmp_path), *sets]).exit_code == 0
    run_dir = next((tmp_path / "runs").iterdir())
    (run_dir / "summary.json").unlink()  # an unfinished run: resume would write
    target = tmp_path / "elsewhere"
    if (run_dir / name).is_dir():
        shutil.move(run_dir / name, target)
    else:
        target.write_text("the user's own file\n")
        (run_dir / name).unlink(missing_ok=True)
    before = sorted(p.name for p in target.iterdir()) if target.is_dir() else target.read_text()
    (run_dir / name).symlink_to(target)
    result = CliRunner().invoke(main, ["train", "--resume", str(run_dir), "--steps", "600"])
    assert result.exit_code == 1 and "symbolic link" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert (sorted(p.name for p in target.iterdir()) if target.is_dir() else target.read_text()) == before
