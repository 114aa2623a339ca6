"""SB3 baseline through the same engine, compare, plot and sweep (local pool and Ray) with tiny budgets."""

import csv
import json
import importlib.util
import os
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

import toy_envs  # noqa: F401
from conftest import TINY_DQN, assert_one_line_error
from rlsuite.sb3.baseline import train_baseline
from rlsuite.cli import main
from rlsuite.run.rundir import METRIC_COLUMNS
from rlsuite.experiments.plots import expand_run_dirs, plot_curves

TINY_EVAL = {"eval_every": "250", "eval_episodes": "2", "final_eval_episodes": "2"}


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)




@pytest.fixture(scope="module")
def sb3_run(tmp_path_factory):
    return Path(train_baseline("ppo", "CartPole-v1", seed=0, steps=600, out=tmp_path_factory.mktemp("sb3"),
                               progress=False)["run_dir"])


def test_sb3_callback_writes_the_same_columns(sb3_run, tiny_run):
    with open(sb3_run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == METRIC_COLUMNS
    with open(tiny_run / "metrics.csv") as f:
        assert list(csv.DictReader(f).fieldnames) == list(rows[0])
    assert any(r["episode_return"] for r in rows) and any(r["eval_mean"] for r in rows)
    import json

    summary = json.loads((sb3_run / "summary.json").read_text())
    assert summary["implementation"] == "sb3" and summary["final_eval"]["episodes"] == 20
    import yaml

    config = yaml.safe_load((sb3_run / "config.yaml").read_text())
    assert config["baseline"]["hyperparameters"]["n_steps"] == 32  # the zoo's values from the card


def test_baseline_cli_and_reinforce_has_none(tmp_path):
    result = invoke("baseline", "dqn", "CartPole-v1", "--steps", 300, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert_one_line_error(invoke("baseline", "reinforce", "CartPole-v1", "--out", tmp_path), "SB3 has no counterpart for 'reinforce'")
    assert_one_line_error(invoke("compare", "reinforce", "CartPole-v1", "--out", tmp_path), "SB3 has no counterpart")


def test_plot_draws_one_curve_per_group(tmp_path, sb3_run, tiny_run):
    fig = plot_curves([sb3_run, tiny_run], tmp_path / "c")
    assert len(fig.labels) == 2 and all(p.stat().st_size > 5000 for p in fig.paths)
    assert [p.suffix for p in fig.paths] == [".png"]  # figures in one format
    result = invoke("plot", sb3_run, tiny_run, "-o", tmp_path / "x.png")
    assert result.exit_code == 0 and "tensorboard --logdir" in result.output
    assert (tmp_path / "x.png").exists() and not (tmp_path / "x.svg").exists()
    # written via temporary files and renames (two benchmark processes may redraw one figure): none left over
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["c.png", "x.png"]


def test_plot_bad_inputs(tmp_path, tiny_run):
    assert_one_line_error(invoke("plot", tmp_path), "is not a run directory and holds none")
    assert_one_line_error(invoke("plot", tmp_path / "missing"), "does not exist")
    empty = tmp_path / "empty-run"
    empty.mkdir()
    (empty / "config.yaml").write_text((tiny_run / "config.yaml").read_text())

    def skipped_then_refused(result, fragment):  # one run: the one line says why
        assert_one_line_error(result, "cannot plot", fragment)

    skipped_then_refused(invoke("plot", empty), "holds no metrics.csv")
    (empty / "metrics.csv").write_text(",".join(METRIC_COLUMNS) + "\n")
    skipped_then_refused(invoke("plot", empty), "has no evaluation rows")


def test_plot_refuses_mixed_envs_without_group(tmp_path, tiny_run):
    from rlsuite import runs

    other = runs.train("dqn", "Acrobot-v1", steps=400, overrides={**TINY_DQN, "eval_every": "200"}, out=tmp_path,
                       progress=False)["run_dir"]
    assert_one_line_error(invoke("plot", tiny_run, other, "-o", tmp_path / "m.png"), "mix environments", "--group env_id")
    result = invoke("plot", tiny_run, other, "-o", tmp_path / "m.png", "--group", "env_id")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "m-CartPole-v1.png").exists() and (tmp_path / "m-Acrobot-v1.png").exists()


def test_compare_tiny_and_reuse(tmp_path):
    args = ("compare", "ppo", "CartPole-v1", "--seeds", 2, "--steps", 512, "--out", tmp_path, "--set", "n_steps=32",
            *[a for k, v in TINY_EVAL.items() for a in ("--set", f"{k}={v}")])  # n_steps: a rollout inside 512 steps
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert "| rlsuite |" in result.output and "| sb3 |" in result.output and "rlsuite / sb3: median" in result.output
    report = Path(result.output.strip().splitlines()[-1].removeprefix("report: "))
    text = report.read_text()
    assert "IQM final [95% CI]" in text and (report.parent / "curves.png").exists()
    # the question a comparison answers, stated: rlsuite's IQM against SB3's interval (not left to the reader)
    assert "rlsuite's final IQM" in result.output and "sb3's 95% interval" in text
    n = TINY_EVAL["final_eval_episodes"]  # the report states the runs' own count, not the protocol's 20
    assert f"final evaluation {n} episodes" in text and f"final ({n} ep.)" in text
    summaries = sorted(report.parent.glob("runs/*/summary.json"))
    before = [(p, p.stat().st_mtime_ns, p.read_text()) for p in summaries]
    again = invoke(*args)  # finished runs are reused, not retrained: no summary is rewritten
    assert again.exit_code == 0 and len(before) == 4
    assert [(p, p.stat().st_mtime_ns, p.read_text()) for p in summaries] == before
    # the card's differences from the zoo's values are said, with the way to compare like for like
    assert "rlsuite's card differs from the zoo's values SB3 trains with" in text and "n_epochs 20 (zoo 20)" not in text
    assert "batch_size 128 (zoo 256)" in text and "n_steps" not in text.split("differs from the zoo")[1].split("\n")[0]
    assert "--same-hparams" in text
    same = invoke(*args, "--same-hparams")  # rlsuite on the zoo's values: its runs' config is the zoo's
    assert same.exit_code == 0, same.output
    zoo_report = Path(same.output.strip().splitlines()[-1].removeprefix("report: "))
    assert zoo_report.parent.name.endswith("-zoo") and "as SB3 does (--same-hparams)" in zoo_report.read_text()
    config = next(zoo_report.parent.glob("runs/rlsuite-*/config.yaml")).read_text()
    assert "batch_size: 256" in config and "n_steps: 32" in config
    # the card's comparison, re-run, now gives the ratio at equal hyperparameters beside its own
    again = invoke(*args)
    assert "At the zoo's values on the same seeds" in report.read_text()


def test_sweep_local_pool_with_a_crashing_run(tmp_path):
    result = invoke("sweep", "ppo", "toy_envs:OddSeedNan-v0", "--seeds", 2, "--steps", 256, "--workers", 2,
                    "--set", "n_steps=16", "--set", "lr=1e-3,3e-4", "--set", "num_envs=1", "--set", "batch_size=16",
                    "--set", "eval_every=128", "--out", tmp_path)
    assert result.exit_code == 1
    assert "2 runs finished, 2 failed" in result.output
    assert "FAILED" in result.output and "error.log" in result.output
    root = tmp_path / "runs" / "sweep-ppo-toy_envs-OddSeedNan-v0" / "runs"
    names = sorted(p.name for p in root.iterdir())
    assert len(names) == 4 and all(n.endswith(("-s0", "-s1")) for n in names)
    assert all((root / n / "summary.json").exists() for n in names if n.endswith("-s0"))
    # each grid point's seeds train as one population: the odd seed's member diverges and stops alone
    assert all("ppo diverged" in (root / n / "error.log").read_text() for n in names if n.endswith("-s1"))


def test_sweep_bad_inputs(tmp_path):
    assert_one_line_error(invoke("sweep", "ppo", "CartPole-v1", "--set", "lrr=1,2", "--out", tmp_path), "unknown hyperparameter 'lrr'")
    assert_one_line_error(invoke("sweep", "ppo", "CartPole-v1", "--set", "lr=1e-3,abc", "--out", tmp_path), "lr='abc'")
    assert_one_line_error(invoke("sweep", "ppo", "CartPole-v1", "--backend", "ray", "--address", "127.0.0.1:1", "--out", tmp_path),
                   "does not answer")


@pytest.mark.ray
@pytest.mark.skipif(importlib.util.find_spec("ray") is None and os.environ.get("CI") != "true",
                    reason="needs the [ray] extra (CI installs it, so there this test always runs)")
def test_sweep_on_a_local_ray(tmp_path):
    result = invoke("sweep", "dqn", "CartPole-v1", "--seeds", 2, "--steps", 300, "--workers", 2, "--backend", "ray",
                    *[a for k, v in TINY_DQN.items() for a in ("--set", f"{k}={v}")], "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert "2 runs finished, 0 failed" in result.output
    root = tmp_path / "runs" / "sweep-dqn-CartPole-v1" / "runs"
    assert sorted(p.name.rsplit("-", 1)[-1] for p in root.iterdir()) == ["s0", "s1"]


def test_env_card_budget_per_agent():
    from rlsuite.config.cards import load_env_card
    from rlsuite.config.schema import EnvCard

    assert EnvCard(id="X", budget=1000).budget_for("ppo") == 1000
    card = EnvCard(id="X", budget={"dqn": 50_000, "ppo": 100_000})
    assert card.budget_for("dqn") == 50_000 and card.budget_for("ppo") == 100_000 and card.budget_for("a2c") is None
    for env_id in ("CartPole-v1", "Acrobot-v1", "LunarLander-v3"):  # what `rlsuite bench` needs
        assert all(load_env_card(env_id).budget_for(a) for a in ("dqn", "a2c", "ppo", "reinforce"))


def test_reuse_ignores_card_prose_and_budget_but_not_settings(tmp_path):
    from rlsuite import runs

    calls = []

    def job(name, lock=None):
        calls.append(name)
        d = tmp_path / "runs" / name
        d.mkdir(parents=True, exist_ok=True)
        (d / "summary.json").write_text(json.dumps({"n": len(calls)}))
        return {"n": len(calls)}

    stamp = {"agent": "ppo", "config": {"lr": 1e-3}, "env_card": {"id": "E", "notes": "a", "budget": 10}}
    assert runs.reuse_or_train(tmp_path, "r", job, fingerprint=stamp) == {"n": 1}
    edited = {**stamp, "env_card": {"id": "E", "notes": "reworded", "budget": {"ppo": 10}}}
    assert runs.reuse_or_train(tmp_path, "r", job, fingerprint=edited) == {"n": 1}  # reused
    changed = {**stamp, "config": {"lr": 3e-4}}
    assert runs.reuse_or_train(tmp_path, "r", job, fingerprint=changed) == {"n": 2}  # retrained
    # an SB3 run made at the zoo's own budget (steps None) is the same experiment as one asked for that budget
    sb3 = {"agent": "sb3-ppo", "steps": None, "hyperparameters": {"n_timesteps": 500}}
    assert runs.reuse_or_train(tmp_path, "s", job, fingerprint=sb3) == {"n": 3}
    assert runs.reuse_or_train(tmp_path, "s", job, fingerprint={**sb3, "steps": 500}) == {"n": 3}
    assert runs.reuse_or_train(tmp_path, "s", job, fingerprint={**sb3, "steps": 400}) == {"n": 4}


def test_plot_iqm_band_and_tensorboard_command(tmp_path, sb3_run, tiny_run):
    import numpy as np

    from rlsuite.cli import tensorboard_command
    from rlsuite.experiments.plots import _band

    seeds_by_x = np.array([[0.0, 1.0], [10.0, 2.0], [20.0, 3.0], [1000.0, 4.0]])  # 4 seeds, 2 x values
    iqm, low, high = _band(seeds_by_x, "iqm")
    assert iqm.tolist() == [15.0, 2.5]  # the middle two of each column: (10+20)/2, (2+3)/2
    assert _band(seeds_by_x, "mean")[0].tolist() == [257.5, 2.5]
    assert (low <= iqm).all() and (iqm <= high).all()
    result = invoke("plot", sb3_run, tiny_run, "-o", tmp_path / "i.png", "--stat", "iqm")
    assert result.exit_code == 0, result.output
    # runs in different folders: one named entry per run, a command TensorBoard accepts as is
    assert f"--logdir_spec {sb3_run.name}:{sb3_run},{tiny_run.name}:{tiny_run}" in result.output
    assert tensorboard_command([tmp_path / "a", tmp_path / "b"]) == f"tensorboard --logdir {tmp_path}"
    assert invoke("plot", tiny_run, "--stat", "median").exit_code == 2  # click rejects it, naming the choices


def test_plot_grid_overview(tmp_path, sb3_run, tiny_run):
    from rlsuite.experiments.plots import plot_grid

    paths = plot_grid({("PPO", "CartPole-v1"): {"sb3": [sb3_run]}, ("DQN", "CartPole-v1"): {"rlsuite": [tiny_run]}},
                      tmp_path / "overview", "two cells")
    assert [p.suffix for p in paths] == [".png"] and all(p.stat().st_size > 5000 for p in paths)
    first = [p.read_bytes() for p in paths]
    plot_grid({("PPO", "CartPole-v1"): {"sb3": [sb3_run]}, ("DQN", "CartPole-v1"): {"rlsuite": [tiny_run]}},
              tmp_path / "overview", "two cells")
    assert [p.read_bytes() for p in paths] == first  # regenerating a committed figure changes no bytes


def test_overview_clips_only_far_early_crashes():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rlsuite.experiments.plots import _clip_early_crashes

    fig, (a, b) = plt.subplots(1, 2)
    a.plot(range(40), [-3000.0] + [float(v) for v in range(0, 195, 5)])  # one crash far below a 0..190 climb
    a.axhline(200, linestyle="--")
    b.plot(range(40), [float(v) for v in range(100, 500, 10)])  # an ordinary learning curve
    assert _clip_early_crashes(a, 200) and a.get_ylim()[0] > -3000
    assert not _clip_early_crashes(b, 475)
    plt.close(fig)


def test_env_card_rejects_a_bad_budget(tmp_path, monkeypatch):
    from rlsuite.config import cards
    from rlsuite.core.errors import UserError

    (tmp_path / "envs").mkdir()
    monkeypatch.setattr(cards, "cards_root", lambda: tmp_path)
    for bad in ("budget: lots", "budget: {ppo: -5}", "budget: {ppo: 1e5x}"):
        (tmp_path / "envs" / "CartPole-v1.yaml").write_text(f"id: CartPole-v1\n{bad}\n")
        with pytest.raises(UserError, match="budget must be a positive number of steps"):
            cards.load_env_card("CartPole-v1")
    (tmp_path / "envs" / "CartPole-v1.yaml").write_text("id: CartPole-v1\nbudget: {ppo: 100000}\n")
    assert cards.load_env_card("CartPole-v1").budget_for("ppo") == 100_000


def test_a_killed_sweep_worker_costs_only_its_own_grid_point(tmp_path):
    # a grid point's seeds are one process (a population): with 2 envs, seed 0's second sub-env is seeded 1,
    # whose reset kills the process; the grid point with 1 env never seeds one
    result = invoke("sweep", "ppo", "toy_envs:KillOddSeed-v0", "--seeds", 1, "--steps", 256, "--workers", 2,
                    "--set", "n_steps=16", "--set", "num_envs=1,2", "--set", "batch_size=16", "--set", "eval_every=128",
                    "--out", tmp_path)
    assert result.exit_code == 1, result.output
    assert "killed by SIGKILL" in result.output and "1 runs finished, 1 failed" in result.output
    assert "| num_envs=1 | " in result.output  # the across-seed table of compare, a row per grid point


def test_two_sweeps_on_one_out_never_delete_each_others_live_runs(tmp_path):
    from rlsuite.run.rundir import RunLock
    from rlsuite.experiments.sweep import _run_name

    name = _run_name("dqn", "CartPole-v1", dict(TINY_DQN), 0)
    live = tmp_path / "runs" / "sweep-dqn-CartPole-v1" / "runs" / name
    (live / "checkpoints").mkdir(parents=True)
    (live / "marker").write_text("another sweep is training this run")
    sets = [a for k, v in TINY_DQN.items() for a in ("--set", f"{k}={v}")]
    with RunLock(live):  # the first sweep's worker holds it
        result = invoke("sweep", "dqn", "CartPole-v1", "--seeds", 2, "--steps", 400, "--workers", 1, *sets,
                        "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert f"BUSY {name}" in result.output and "left to the process already training them" in result.output
    assert (live / "marker").exists()  # untouched
    assert (live.parent / (name[:-1] + "1") / "summary.json").exists()


def test_sweep_rejects_a_repeated_key(tmp_path):
    assert_one_line_error(invoke("sweep", "ppo", "CartPole-v1", "--set", "lr=1e-3", "--set", "lr=2e-3",
                                 "--out", tmp_path), "--set lr is given twice")


def test_side_by_side_stops_at_an_interrupted_run(tmp_path):
    """SIGTERM stops a run (checkpoint, status interrupted): the comparison must stop there too, with the
    run's exit code, instead of going on to train the next seed (a bug: it did, and then crashed)."""
    from rlsuite.experiments import compare

    trained = []

    def fake(seed, out, progress, name, lock):
        trained.append(seed)
        return {"status": "interrupted", "exit_code": 143, "run_dir": str(out / "runs" / name)}

    with pytest.raises(SystemExit) as stop:
        compare.side_by_side("CartPole-v1", [0, 1], tmp_path, {"x": (fake, None)})
    assert stop.value.code == 143 and trained == [0]


def test_side_by_side_trains_sb3_in_processes_beside_the_population(tmp_path):
    from rlsuite.experiments import compare

    overrides = {**TINY_EVAL, "n_steps": "32"}  # a rollout inside the 512 steps
    variants = compare.ours_and_sb3("ppo", "CartPole-v1", 512, overrides, {**{k: int(v) for k, v in TINY_EVAL.items()},
                                                                          "n_steps": 32})
    seen = []
    results = compare.side_by_side("CartPole-v1", [0, 1, 2], tmp_path, variants, workers=2,
                                   on_result=lambda label, seed, s: seen.append((label, seed)))
    assert [s["status"] for v in results.values() for s in v] == ["complete"] * 6 and len(seen) == 6
    commands = {label: [yaml.safe_load((Path(s["run_dir"]) / "config.yaml").read_text())["command"] for s in v]
                for label, v in results.items()}
    assert all(c.endswith("compare.py --job") for c in commands["sb3"])  # each SB3 seed: a process of its own
    assert not any(c.endswith("--job") for c in commands["rlsuite"])  # the population: here


@pytest.mark.parametrize("how", ["SIGTERM to compare alone", "Ctrl-C to the process group"])
def test_a_stopped_compare_stops_both_sides_at_a_checkpoint_and_starts_no_other_run(tmp_path, how):
    # rlsuite's two seeds train as a population in compare's process; SB3's two on one worker, so seed 1 waits.
    # A SIGTERM sent to compare alone (as a job scheduler sends it) must reach the SB3 run; a Ctrl-C reaches every
    # process from the terminal and must not be sent twice (a second signal aborts a run). Either way the queued
    # SB3 seed never starts.
    import signal
    import subprocess
    import sys
    import time

    sets = [a for k, v in TINY_DQN.items() for a in ("--set", f"{k}={v}")]
    proc = subprocess.Popen([sys.executable, "-m", "rlsuite.cli", "compare", "dqn", "CartPole-v1", "--seeds", "2",
                             "--workers", "1", "--steps", "500000", *sets, "--out", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while len(list(tmp_path.glob("runs/compare-*/runs/*/checkpoints/last.pt"))) < 3 and \
                time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()
        if how.startswith("SIGTERM"):
            proc.send_signal(signal.SIGTERM)
        else:
            os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == (143 if how.startswith("SIGTERM") else 130) and "Traceback" not in err, err
    statuses = {p.parent.name.rsplit("-s", 1)[0] + p.parent.name.rsplit("-s", 1)[1][:1]: json.loads(p.read_text())
                for p in tmp_path.glob("runs/compare-*/runs/*/status.json")}
    assert sorted(statuses) == ["rlsuite-CartPole-v10", "rlsuite-CartPole-v11", "sb3-CartPole-v10"], (statuses, err)
    assert all(s["status"] == "interrupted" for s in statuses.values()), (statuses, err)  # each at a checkpoint
    assert not any("abort" in json.dumps(s) for s in statuses.values())


def test_finished_runs_stay_reusable_when_fields_with_defaults_are_added():
    # Fields added later (frame_stack on env cards, share_frames on DQN) must not make every finished
    # benchmark run look stale; a changed value still must.
    import copy
    import json

    from rlsuite import runs

    new = json.loads(json.dumps(runs.fingerprint("dqn", "CartPole-v1"), default=str))
    assert new["config"]["net"] == "mlp"  # net: auto is resolved before it is recorded
    old = copy.deepcopy(new)
    del old["config"]["share_frames"], old["env_card"]["frame_stack"]
    assert runs._experiment(old) == runs._experiment(new)
    old["config"]["gamma"] = 0.5
    assert runs._experiment(old) != runs._experiment(new)


def test_compare_takes_groups_of_finished_runs(tmp_path, tiny_run):
    """compare works on trial runs unchanged. Two groups of finished runs (a folder of runs, a
    quoted glob) on one table, with the per-seed table and the curves beside it."""
    from rlsuite import runs

    other = tmp_path / "other"
    for seed in (2, 3):
        runs.train("dqn", "CartPole-v1", seed=seed, steps=600, overrides=dict(TINY_DQN), out=other, progress=False)
    report = tmp_path / "cmp.md"
    result = invoke("compare", f"tiny={tiny_run}", f"other={other}/runs/*-s*", "-o", report)
    assert result.exit_code == 0, result.output
    assert "| tiny | 1 |" not in result.output  # the aggregate table, not a per-seed row, goes to the terminal
    assert "| tiny |" in result.output and "| other |" in result.output
    assert "tiny / other: median" in result.output and "tiny's final IQM" in result.output
    text = report.read_text()
    assert "| other | 2 |" in text and "| other | 3 |" in text and "| tiny | 1 |" in text
    assert report.with_suffix(".png").exists()


def test_compare_of_runs_bad_input_is_one_line(tmp_path, tiny_run):
    assert_one_line_error(invoke("compare", f"a={tiny_run}"), "at least two groups")
    assert_one_line_error(invoke("compare", f"a={tiny_run}", f"b={tmp_path}/nothing-*"), "matches nothing")
    assert_one_line_error(invoke("compare", f"a={tiny_run}", f"a={tiny_run}"), "given twice")
    assert_one_line_error(invoke("compare", f"a={tiny_run}", f"b={tiny_run}", "--seeds", "3"), "takes none of them")
    assert_one_line_error(invoke("compare", f"a={tiny_run}", f"b={tiny_run}", "-o", tmp_path / "x.png"), "markdown")
    stopped = tmp_path / "stopped"
    stopped.mkdir()
    (stopped / "config.yaml").write_text((tiny_run / "config.yaml").read_text())
    (stopped / "status.json").write_text('{"status": "interrupted", "step": 300}')
    assert_one_line_error(invoke("compare", f"a={tiny_run}", f"b={stopped}"), "has not finished", "interrupted")
    assert_one_line_error(invoke("compare", "dqn", "CartPole-v1", "-o", tmp_path / "c.md"), "groups of finished runs")


def test_curves_start_where_every_seed_has_evaluated():
    """A curve starts at the latest first evaluation of its seeds, not at x = 0 with the first value held flat
    back to it (the wall-clock panel drew SAC Pendulum's first evaluation from 0 s to 32 s)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from rlsuite.experiments.plots import _draw

    members = [{"steps": np.array([2000.0, 4000.0, 6000.0]), "wall": np.array([32.0, 60.0, 90.0]),
                "mean": np.array([-867.0, -400.0, -150.0])},
               {"steps": np.array([3000.0, 6000.0]), "wall": np.array([40.0, 80.0]), "mean": np.array([-900.0, -200.0])}]
    fig, (ax_steps, ax_wall) = plt.subplots(1, 2)
    _draw(ax_steps, members, "steps", "mean", "x")
    _draw(ax_wall, members, "wall", "mean", "x")
    steps_x, wall_x = ax_steps.get_lines()[0].get_xdata(), ax_wall.get_lines()[0].get_xdata()
    plt.close(fig)
    assert list(steps_x) == [3000.0, 4000.0, 6000.0]  # 2000 is before the second seed's first evaluation
    assert wall_x[0] == 40.0 and wall_x[-1] == 90.0 and len(wall_x) == 200


def test_a_sigterm_to_a_local_sweep_stops_its_run_at_a_checkpoint_and_starts_no_other(tmp_path):
    # Before: the pool's exit waited for the running run (the SIGTERM had reached the sweep's process only)
    # and then started every queued one, so a stopped sweep kept training for hours.
    import signal
    import subprocess
    import sys
    import time

    sets = [a for k, v in TINY_DQN.items() for a in ("--set", f"{k}={v}")]
    # two grid points of two seeds: each grid point's seeds are one job (a population), one job at a time
    proc = subprocess.Popen([sys.executable, "-m", "rlsuite.cli", "sweep", "dqn", "CartPole-v1", "--seeds", "2",
                             "--workers", "1", "--steps", "500000", *sets, "--set", "gamma=0.99,0.98",
                             "--out", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    runs = tmp_path / "runs" / "sweep-dqn-CartPole-v1" / "runs"
    try:
        deadline = time.monotonic() + 240
        while not any(runs.glob("*/checkpoints/last.pt")) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGTERM)  # to the sweep's process only, as a job scheduler would
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 143 and "Traceback" not in err, err
    assert "sweep stopped by SIGTERM" in err and "re-run the same command to resume" in err, err
    started = sorted(d.name for d in runs.iterdir())
    assert len(started) == 2 and len({name.rsplit("-s", 1)[0] for name in started}) == 1, started  # the queued point never started
    for name in started:
        status = json.loads((runs / name / "status.json").read_text())
        assert status["status"] == "interrupted", status  # stopped at a checkpoint, resumable


def test_a_sweep_keeps_its_grid_in_its_report_and_in_plot(tmp_path):
    """Before: a sweep wrote a table only, and plot drew both learning rates as one curve, 'rlsuite ppo (n=4)'."""
    result = invoke("sweep", "ppo", "CartPole-v1", "--seeds", 2, "--steps", 128, "--workers", 1, "--quiet",
                    "--set", "lr=1e-3,3e-4", "--set", "n_steps=16", "--set", "num_envs=2", "--set", "batch_size=16",
                    "--set", "eval_every=64", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    root = tmp_path / "runs" / "sweep-ppo-CartPole-v1"
    report = (root / "report.md").read_text()
    assert "| lr=1e-3 |" in report and "| lr=3e-4 |" in report and "![curves](curves.png)" in report
    assert (root / "curves.png").stat().st_size > 5000 and f"report: {root / 'report.md'}" in result.output
    # plot on the sweep's folder: one curve per learning rate, and it says why
    fig = plot_curves(expand_run_dirs([root]), tmp_path / "auto")
    assert fig.grouped_by == ["lr"] and sorted(fig.labels) == ["rlsuite ppo lr=0.0003 (n=2)", "rlsuite ppo lr=0.001 (n=2)"]
    shown = CliRunner().invoke(main, ["plot", str(root), "-o", str(tmp_path / "p.png")])
    assert shown.exit_code == 0 and "grouped by lr: these runs differ in more than the seed" in shown.output
    chosen = plot_curves(expand_run_dirs([root]), tmp_path / "chosen", group_by=["lr", "n_steps"])
    assert sorted(chosen.labels) == ["rlsuite ppo lr=0.0003 n_steps=16 (n=2)", "rlsuite ppo lr=0.001 n_steps=16 (n=2)"]
    result = invoke("plot", root, "--group", "lr", "--group", "env_id", "-o", tmp_path / "g.png")
    assert result.exit_code == 0 and (tmp_path / "g-CartPole-v1.png").exists(), result.output
    assert_one_line_error(invoke("plot", root, "--group", "lrr", "-o", tmp_path / "x.png"), "--group 'lrr' is not a field",
                          "did you mean: lr")
    # compare groups finished runs by a field's values too
    result = invoke("compare", root, "--group", "lr", "-o", tmp_path / "by-lr.md")
    assert result.exit_code == 0, result.output
    assert "| rlsuite ppo lr=0.001 |" in result.output and "| rlsuite ppo lr=0.0003 |" in result.output
    assert_one_line_error(invoke("compare", root, "--group", "gamma", "-o", tmp_path / "g.md"), "share one value of gamma")


def test_a_sweep_grid_point_too_long_for_a_folder_name_is_named_by_its_hash():
    from rlsuite.experiments.sweep import _run_name

    name = _run_name("ppo", "CartPole-v1", {"hidden": [64] * 80}, 3)
    assert len(name.encode()) <= 255 and name.startswith("ppo-CartPole-v1-grid") and name.endswith("-s3")
    assert name == _run_name("ppo", "CartPole-v1", {"hidden": [64] * 80}, 3)  # the same point, the same name


def test_compare_of_runs_refuses_a_supervised_run_and_a_nan_summary_in_one_line(tmp_path, tiny_run):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(tiny_run, other)
    summary = json.loads((other / "summary.json").read_text())
    (other / "summary.json").write_text(json.dumps({**summary, "final_eval": {**summary["final_eval"], "mean": float("nan")}}))
    assert_one_line_error(invoke("compare", f"a={tiny_run}", f"b={other}", "-o", tmp_path / "c.md"),
                          "the final evaluation is nan, not a finite number")
    supervised = {k: v for k, v in summary.items() if k != "final_eval"} | {"agent": "supervised", "test_acc": 0.9}
    (other / "summary.json").write_text(json.dumps(supervised))
    assert_one_line_error(invoke("compare", f"a={tiny_run}", f"b={other}", "-o", tmp_path / "c.md"),
                          "is a supervised run")
    assert not (tmp_path / "c.md").exists()


def test_plot_keeps_seeds_that_differ_only_in_how_they_are_evaluated_together(tmp_path, tiny_run):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(tiny_run, other)
    data = yaml.safe_load((other / "config.yaml").read_text())
    data["seed"] = 7
    data["config"]["eval_episodes"] = 3  # how it is evaluated, not what it learns
    data["config"]["save_buffer"] = False
    data["env_card"]["notes"] = "edited prose"
    data["config"].pop("optimizer_eps", None)  # a field an older run lacks
    (other / "config.yaml").write_text(yaml.safe_dump(data))
    fig = plot_curves([tiny_run, other], tmp_path / "same")
    assert fig.grouped_by == [] and len(fig.labels) == 1


def test_resume_keeps_the_runs_tracking_id(tmp_path):
    from rlsuite import runs

    stopped = runs.train("dqn", "CartPole-v1", steps=800, overrides=dict(TINY_DQN), out=tmp_path, progress=False,
                         stop_at=400)
    first = yaml.safe_load((Path(stopped["run_dir"]) / "config.yaml").read_text())["tracking_id"]
    runs.resume(stopped["run_dir"], progress=False)
    assert yaml.safe_load((Path(stopped["run_dir"]) / "config.yaml").read_text())["tracking_id"] == first
    again = runs.train("dqn", "CartPole-v1", steps=800, overrides=dict(TINY_DQN), out=tmp_path, progress=False)
    assert yaml.safe_load((Path(again["run_dir"]) / "config.yaml").read_text())["tracking_id"] != first
