"""The live view of many runs: status.json heartbeats written while a run trains, the rows read from them, and
the multi-run commands (a population, compare) showing every run in flight off a terminal."""

import io
import json
import time

from click.testing import CliRunner

from conftest import TINY_DQN
from rlsuite import runs
from rlsuite.cli import main
from rlsuite.run import engine, live
from rlsuite.run.live import LiveRuns, eta, run_row


def test_rows_from_status_by_hand():
    now = 1000.0
    status = {"status": "running", "step": 2500, "total": 10000, "steps_per_s": 250.0, "last_eval": 123.45,
              "updated": now - 1}
    assert run_row("r", status, now) == ["r", "2,500/10,000", "25%", "250", "123.5", "0m30s"]  # 7,500 steps at 250/s
    assert run_row("r", {**status, "updated": now - live.STALE_SECONDS - 1}, now)[-1] == "stalled"
    assert run_row("r", {"status": "complete", "step": 10000}, now) is None  # finished: counted, not a row
    assert run_row("r", {"status": "running", "step": 0}, now) is None  # started, no heartbeat yet
    assert eta(3725) == "1h02m" and eta(None) == "—" and eta(float("nan")) == "—"


def test_a_training_run_publishes_its_progress_in_status_json(tmp_path, monkeypatch):
    monkeypatch.setattr(engine, "STATUS_SECONDS", 0.0)
    seen = []

    def on_eval(step, mean):  # mid-run: what a watcher in another process reads
        seen.append(json.loads(next((tmp_path / "runs").glob("*/status.json")).read_text()))

    runs.train("dqn", "CartPole-v1", steps=900, overrides=dict(TINY_DQN), out=tmp_path, progress=False,
               on_eval=on_eval)
    assert seen and all(s["status"] == "running" and s["total"] == 900 and 0 < s["step"] <= 900 for s in seen)
    assert all(s["steps_per_s"] > 0 and time.time() - s["updated"] < 600 for s in seen)
    assert any(s.get("last_eval") is not None for s in seen[1:])  # the evaluation before is shown after it


def test_lines_mode_shows_each_run_in_flight_and_the_finished_count(tmp_path, monkeypatch):
    monkeypatch.setattr(live, "LINE_SECONDS", 0.05)
    a, b, c = (tmp_path / n for n in ("a", "b", "c"))
    for d in (a, b):
        d.mkdir()
    (a / "status.json").write_text(json.dumps({"status": "complete", "step": 10}))
    (b / "status.json").write_text(json.dumps({"status": "running", "step": 5, "total": 10, "steps_per_s": 1.0,
                                               "updated": time.time()}))
    stream = io.StringIO()
    with LiveRuns([a, b, c], "test", "lines", stream=stream):
        time.sleep(0.3)
    text = stream.getvalue()
    assert "[test] 1/3 finished, 1 training" in text and "  b  step 5/10 (50%)  1 steps/s  eval —  ETA 0m05s" in text
    quiet = io.StringIO()
    with LiveRuns([a, b, c], "test", None, stream=quiet):
        time.sleep(0.1)
    assert quiet.getvalue() == ""


def test_train_seeds_shows_every_member_off_a_terminal(tmp_path, monkeypatch):
    monkeypatch.setattr(live, "LINE_SECONDS", 0.2)
    monkeypatch.setattr(engine, "STATUS_SECONDS", 0.0)
    args = ["train", "dqn", "CartPole-v1", "--seeds", "0,1", "--steps", "3000", "--out", str(tmp_path),
            *[a for k, v in TINY_DQN.items() for a in ("--set", f"{k}={v}")]]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "[dqn CartPole-v1, 2 seeds in one population]" in result.output
    assert "dqn-CartPole-v1-s0-" in result.output and "dqn-CartPole-v1-s1-" in result.output  # a line per member
    quiet = CliRunner().invoke(main, args + ["--quiet", "--out", str(tmp_path / "q")])
    assert quiet.exit_code == 0 and "seeds in one population]" not in quiet.output


def test_runs_touched_since_finds_only_the_runs_a_benchmark_trains(tmp_path):
    import os
    import time

    from rlsuite.run.live import runs_touched_since

    old, new = tmp_path / "runs" / "a" / "old", tmp_path / "runs" / "b" / "runs" / "new"
    for d in (old, new):
        d.mkdir(parents=True)
        (d / "status.json").write_text('{"status": "running", "step": 1}')
    past = time.time() - 3600
    os.utime(old / "status.json", (past, past))  # a run of an earlier benchmark
    source = runs_touched_since(tmp_path / "runs", time.time() - 60)
    assert source() == [new]


def test_bench_shows_the_runs_its_script_trains(tmp_path, monkeypatch):
    """bench runs a script in a child process; its runs appear in the live view from their status files."""
    from click.testing import CliRunner

    from rlsuite import cli
    from rlsuite.run import live

    seen = []
    original = live.LiveRuns.lines

    def record(self):
        out = original(self)
        seen.extend(out)
        return out

    monkeypatch.setattr(live, "LINE_SECONDS", 0.2)
    monkeypatch.setattr(live.LiveRuns, "lines", record)

    def fake_script(cmd, **kwargs):  # stands in for benchmarks/<name>.py: one run, training for a moment
        import json
        import time

        run = tmp_path / "runs" / "bench-x" / "ppo-s0"
        run.mkdir(parents=True)
        (run / "status.json").write_text(json.dumps({"status": "running", "step": 512, "total": 1024,
                                                     "steps_per_s": 100.0, "updated": time.time()}))
        time.sleep(1.0)  # the view prints every 0.2 s here
        return subprocess.CompletedProcess(cmd, 0)

    import subprocess

    monkeypatch.setattr(cli.subprocess, "run", fake_script)
    result = CliRunner().invoke(cli.main, ["bench", "--sections", "cards", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert any("ppo-s0  step 512/1,024 (50%)" in line for line in seen), seen
