"""Bad input, tried the way a user would: every case ends in one line naming the problem, a non-zero
exit, no traceback, and no run directory left behind."""

import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from conftest import assert_one_line_error
from rlsuite.cli import main

TRAIN = [
    (["--set", "lr={linear: [1e-3"], "not valid YAML"),
    (["--set", "hidden=-64,64"], "hidden must be a non-empty list of layer sizes"),
    (["--set", "hidden=0"], "hidden must be"),
    (["--set", "hidden="], "hidden must be"),
    (["--set", "lr=-1"], "lr must be"),
    (["--set", "lr=0"], "lr must start above 0"),
    (["--set", "lr=1e30"], "lr must be at most 10"),
    (["--set", "lr=nan"], "must be finite"),
    (["--set", "gamma=1.5"], "gamma must be in [0, 1]"),
    (["--set", "batch_size=0"], "batch_size must be positive"),
    (["--set", "buffer_size=1e11"], "buffer_size must be at most 1e9"),
    (["--set", "buffer_size=900000000"], "GiB of RAM is available"),
    (["--set", "epsilon={linear: [1.5, 0]}"], "epsilon must be in [0, 1]"),
    (["--set", "tau=0"], "tau must be in (0, 1]"),
    (["--set", "max_grad_norm=-1"], "max_grad_norm must be positive"),
    (["--set", "num_envs=0"], "num_envs must be positive"),
    (["--set", "eval_episodes=0"], "eval_episodes must be positive"),
    (["--set", "checkpoint_minutes=0"], "checkpoint_minutes must be positive"),
    (["--set", "learning_starts=-5"], "learning_starts must be >= 0"),
    (["--set", "double=maybe"], "is not a boolean"),
    (["--set", "loss=l1"], "is not one of huber, mse"),
    (["--set", "nosuchfield=1"], "unknown hyperparameter"),
    (["--set", "learning_rate=1e-3"], "that is the zoo's (SB3's) name; rlsuite calls it lr (--set lr=...)"),
    (["--set", "vectorization=sync"], "is an env-card field, not a hyperparameter"),
    (["--set", "=1"], "is not key=value"),
    (["--seed", "-1"], "--seed must be an integer in [0, 2^32)"),
    (["--seed", str(2**70)], "--seed must be an integer in [0, 2^32)"),
    (["--steps", str(10**30)], "--steps must be a number of environment steps in [1, 1e+10]"),
    (["--steps", "-5"], "--steps must be"),
    # found by a second pair of eyes trying 352 inputs
    (["--set", "batch_size=nan"], "is not a finite integer"),
    (["--set", "batch_size=1e999"], "is not a finite integer"),
    (["--set", "hidden=64,1e400"], "is not a finite integer"),
    (["--set", "net=cnn"], "net=cnn needs image observations"),
    (["--set", "hidden=65536,65536"], "GiB of RAM is available"),
    (["--set", "torch_threads=100000"], "torch_threads must be at most 256"),
    (["--set", "buffer_size=10"], "batch_size 64 is larger than buffer_size 10"),
    (["--out", ""], "is empty"),
]


@pytest.mark.parametrize("extra, fragment", TRAIN)
def test_bad_train_input(tmp_path, extra, fragment):
    result = CliRunner().invoke(main, ["train", "dqn", "CartPole-v1", "--out", str(tmp_path), *extra])
    assert_one_line_error(result, fragment)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.parametrize("agent, extra, fragment", [
    ("ppo", ["--set", "n_epochs=0"], "n_epochs must be positive"),
    ("ppo", ["--set", "batch_size=0"], "batch_size must be positive"),
    ("ppo", ["--set", "clip_range=0"], "clip_range must be positive"),
    ("ppo", ["--set", "target_kl=-0.01"], "target_kl must be positive"),
    ("a2c", ["--set", "n_steps=0"], "n_steps must be positive"),
    ("a2c", ["--set", "ent_coef=-1"], "ent_coef must be >= 0"),
    ("reinforce", ["--set", "gae_lambda=2"], "gae_lambda must be in [0, 1]"),
    ("supervised", [], "is not an RL agent"),
    ("ppo", ["--steps", "300", "--set", "n_steps=5000"], "one rollout (n_steps × num_envs = 40,000 steps) is larger than the budget"),
    ("ppo", ["--steps", "1"], "is larger than the budget of 1 steps"),
    ("ppo", ["--set", "batch_size=100000000"], "is larger than a rollout"),
])
def test_bad_pg_input(tmp_path, agent, extra, fragment):
    result = CliRunner().invoke(main, ["train", agent, "CartPole-v1", "--out", str(tmp_path), *extra])
    assert_one_line_error(result, fragment)


def test_non_utf8_out(tmp_path):
    bad = str(tmp_path / "out-\udcff")  # a byte that is not UTF-8, as the shell hands it over
    result = CliRunner().invoke(main, ["train", "dqn", "CartPole-v1", "--steps", "100", "--out", bad])
    assert_one_line_error(result, "not valid UTF-8")


def _hand_edited(tmp_path, tiny_run, edit) -> Path:
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "lock").unlink(missing_ok=True)
    data = yaml.safe_load((run / "config.yaml").read_text())
    edit(data)
    (run / "config.yaml").write_text(yaml.safe_dump(data))
    return run


@pytest.mark.parametrize("edit, fragment", [
    (lambda d: d["env_card"].update(colour="red"), "unknown env-card key 'colour'"),
    (lambda d: d.pop("seed"), "'seed' must be an integer"),
    (lambda d: d.update(seed="zero"), "'seed' must be an integer"),
    (lambda d: d["config"].update(lr="fast"), "lr='fast' is not a number"),
    (lambda d: d["config"].update(hidden=[0]), "hidden must be"),
    (lambda d: d.update(agent="ppo"), "'adam_eps' is a setting of dqn, not of ppo"),
    (lambda d: d.update(agent="ddpg"), "unknown agent 'ddpg'"),
    (lambda d: d.update(config=[1, 2]), "not an rlsuite run config"),
    (lambda d: d["env_card"].update(wrappers="TimeLimit"), "wrappers must be a list"),
    (lambda d: d.update(env_id="Pendulum-v1"), "env_id 'Pendulum-v1' disagrees with its env card's id"),
    (lambda d: d["config"].update(torch_threads=100000), "torch_threads must be at most 256"),
])
def test_hand_edited_config_yaml(tmp_path, tiny_run, edit, fragment):
    run = _hand_edited(tmp_path, tiny_run, edit)
    for args in (["eval", str(run)], ["train", "--resume", str(run), "--steps", "5000"]):
        assert_one_line_error(CliRunner().invoke(main, args), fragment)


def test_eval_and_plot_bad_inputs(tmp_path, tiny_run):
    runner = CliRunner()
    assert_one_line_error(runner.invoke(main, ["eval", str(tiny_run), "--seed", "-5"]), "--seed must be an integer")
    assert_one_line_error(runner.invoke(main, ["eval", str(tiny_run), "--episodes", "0"]), "--episodes must be in")
    bad = tmp_path / "bad"
    shutil.copytree(tiny_run, bad)
    (bad / "metrics.csv").write_text("time,value\n1,2\n")
    assert_one_line_error(runner.invoke(main, ["plot", str(bad), "-o", str(tmp_path / "x.png")]), "cannot plot", "has no 'step'")
    shutil.copytree(bad, tmp_path / "bad2")
    only_bad = runner.invoke(main, ["plot", str(bad), str(tmp_path / "bad2"), "-o", str(tmp_path / "x.png")])
    assert only_bad.exit_code == 1 and "Traceback" not in only_bad.output
    assert only_bad.output.strip().splitlines()[-1] == "Error: none of these runs can be plotted (see the warnings above)"
    assert_one_line_error(runner.invoke(main, ["plot", str(tiny_run), "-o", "/proc/nope/x.png"]), "cannot write")
    both = runner.invoke(main, ["plot", str(tiny_run), str(bad), "-o", str(tmp_path / "y.png")])
    assert both.exit_code == 0 and "warning: skipping" in both.output and "has no 'step'" in both.output


def test_env_card_wrapper_errors(tmp_path, monkeypatch):
    from rlsuite.config import cards
    from rlsuite.config.schema import EnvCard
    from rlsuite.envs.make import make_env
    from rlsuite.core.errors import UserError

    with pytest.raises(UserError, match="TimeLimit.*unexpected keyword argument 'max_steps'"):
        make_env(EnvCard("CartPole-v1", wrappers=[{"name": "TimeLimit", "kwargs": {"max_steps": 5}}]))
    with pytest.raises(UserError, match="not a gymnasium.wrappers class"):
        make_env(EnvCard("CartPole-v1", wrappers=["NoSuchWrapper"]))
    with pytest.raises(UserError, match="cannot import nosuchpkg"):
        make_env(EnvCard("CartPole-v1", wrappers=["nosuchpkg.mod:Wrap"]))
    # package.module:Class works as well as a gymnasium name
    env = make_env(EnvCard("CartPole-v1", wrappers=[{"name": "gymnasium.wrappers:TimeLimit", "kwargs": {"max_episode_steps": 3}}]))
    env.reset(seed=0)
    assert [env.step(0)[3] for _ in range(3)][-1] is True
    monkeypatch.setattr(cards, "cards_root", lambda: tmp_path)
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / "CartPole-v1.yaml").write_text("id: CartPole-v1\neval_every: [1\n")
    with pytest.raises(UserError, match="CartPole-v1.yaml is not valid YAML"):
        cards.load_env_card("CartPole-v1")
    (tmp_path / "envs" / "CartPole-v1.yaml").write_text("id: CartPole-v1\neval_every: -3\n")
    with pytest.raises(UserError, match="eval_every must be a positive integer"):
        cards.load_env_card("CartPole-v1")


def test_a_run_dir_holding_another_agents_checkpoint(tmp_path, tiny_run):
    import rlsuite

    ppo = rlsuite.train("ppo", "CartPole-v1", steps=256, overrides={"n_steps": "32", "eval_every": "128",
                                                                   "eval_episodes": "1", "final_eval_episodes": "1"},
                        out=tmp_path)
    run = Path(ppo["run_dir"])
    shutil.copy(tiny_run / "checkpoints" / "last.pt", run / "checkpoints" / "last.pt")  # DQN's, copied by hand
    (run / "summary.json").unlink()
    for args in (["eval", str(run)], ["train", "--resume", str(run), "--steps", "5000"]):
        assert_one_line_error(CliRunner().invoke(main, args), "holds a rlsuite dqn checkpoint", "describes a rlsuite ppo run")


@pytest.mark.parametrize("args, fragment", [
    (["train", "dqn", ":"], "is not an environment id"),
    (["train", "dqn", "gymnasium:"], "needs both parts"),
    (["list", "dqn", "--env", "Nope-v9"], "unknown environment 'Nope-v9'"),
    (["list", "supervised", "--env", "CartPole-v1"], "--env applies to RL agents"),
    (["baseline", "dqn", "Pendulum-v1"], "DQN needs a discrete action space"),
    (["baseline", "ppo", "CartPole-v1", "--seed", "-1"], "--seed must be an integer"),
    (["compare", "ppo", "CartPole-v1", "--seeds", "10000000000"], "--seeds must be in [1, 10000]"),
    (["sweep", "ppo", "CartPole-v1", "--workers", "0"], "--workers in [1, 1024]"),
    (["sweep", "ppo", "CartPole-v1", "--address", "auto"], "--address is for --backend ray"),
    (["supervised", "mnist", "--seed", "-1"], "--seed must be an integer"),
    (["supervised", "mnist", "--set", "net=cnn"], "choose the network with --net"),
])
def test_more_bad_commands(tmp_path, args, fragment):
    assert_one_line_error(CliRunner().invoke(main, [*args, "--out", str(tmp_path)] if args[0] != "list" else args),
                          fragment)


def test_out_that_is_a_file(tmp_path):
    afile = tmp_path / "afile.txt"
    afile.write_text("x")
    for args in (["compare", "dqn", "CartPole-v1", "--seeds", "1", "--steps", "300"],
                 ["sweep", "dqn", "CartPole-v1", "--seeds", "1", "--steps", "300"]):
        assert_one_line_error(CliRunner().invoke(main, [*args, "--out", str(afile)]), "choose a writable --out")
    (tmp_path / "o" ).mkdir()
    (tmp_path / "o" / "runs").write_text("a file where the runs folder goes")
    assert_one_line_error(CliRunner().invoke(main, ["train", "dqn", "CartPole-v1", "--out", str(tmp_path / "o")]),
                          "is a file, not a folder")


def test_resume_keeps_its_own_seed_and_folder(tmp_path, tiny_run):
    for extra in (["--seed", "5"], ["--out", str(tmp_path)]):
        assert_one_line_error(CliRunner().invoke(main, ["train", "--resume", str(tiny_run), *extra]),
                              "--resume continues a run in its own directory")


def test_corrupted_run_files(tmp_path, tiny_run):
    import torch

    run = _hand_edited(tmp_path, tiny_run, lambda d: d.update(agent=["dqn"]))
    assert_one_line_error(CliRunner().invoke(main, ["eval", str(run)]), "not an rlsuite run config")
    run = _hand_edited(tmp_path / "b", tiny_run, lambda d: d["config"].update(gamma=10**400))
    assert_one_line_error(CliRunner().invoke(main, ["eval", str(run)]), "is not a number")
    run = _hand_edited(tmp_path / "c", tiny_run, lambda d: d["config"].update(hidden=[32]))
    assert_one_line_error(CliRunner().invoke(main, ["train", "--resume", str(run), "--steps", "5000"]),
                          "does not match the network config.yaml describes")
    run = _hand_edited(tmp_path / "d", tiny_run, lambda d: None)
    (run / "summary.json").write_text("{not json")
    plotted = CliRunner().invoke(main, ["plot", str(run), "-o", str(tmp_path / "p.png")])
    assert plotted.exit_code == 1 and "summary.json is corrupt" in plotted.output and "Traceback" not in plotted.output
    assert_one_line_error(CliRunner().invoke(main, ["plot", str(tiny_run), "-o", ""]), "must be an image path")
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    ckpt["state"]["q"] = {k: v * float("nan") for k, v in ckpt["state"]["q"].items()}
    torch.save(ckpt, run / "checkpoints" / "last.pt")
    assert_one_line_error(CliRunner().invoke(main, ["eval", str(run)]), "holds non-finite weights")


def test_corrupt_metrics_rows(tmp_path, tiny_run):
    run = _hand_edited(tmp_path, tiny_run, lambda d: None)
    (run / "summary.json").unlink()
    lines = (run / "metrics.csv").read_text().splitlines()
    lines[2] = "abc,1.0,,,,"  # a row the checkpoint vouches for, damaged by hand
    (run / "metrics.csv").write_text("\n".join(lines) + "\n")
    assert_one_line_error(CliRunner().invoke(main, ["train", "--resume", str(run), "--steps", "5000"]),
                          "metrics.csv line 3 is corrupt")
    lines[2] = lines[1]
    evals = [i for i in range(1, len(lines)) if lines[i].split(",")[4]]  # evaluation rows (not the header)
    parts = lines[evals[0]].split(",")
    parts[4] = "nan"
    lines[evals[0]] = ",".join(parts)
    (run / "metrics.csv").write_text("\n".join(lines) + "\n")
    plotted = CliRunner().invoke(main, ["plot", str(run), "-o", str(tmp_path / "p.png")])
    assert plotted.exit_code == 1 and "has NaN/Inf" in plotted.output and "Traceback" not in plotted.output


@pytest.mark.parametrize("args,fragments", [
    (["train", "dqn", "CartPole-v1", "--stepz", "5"], ["No such option", "--stepz", "--steps", "rlsuite train --help"]),
    (["trainn"], ["No such command 'trainn'", "rlsuite --help"]),
    (["train", "dqn", "CartPole-v1", "--steps", "abc"], ["'abc' is not a valid integer", "rlsuite train --help"]),
    (["tune", "show"], ["Missing argument 'TUNE_DIR'", "rlsuite tune show --help"]),
    (["tune", "dqn"], ["Missing argument 'ENV'", "rlsuite tune run --help"]),
    (["compare", "--seeds"], ["requires an argument", "rlsuite compare --help"]),
])
def test_usage_errors_are_one_line_with_exit_code_2(args, fragments):
    """click's usage errors were four lines (usage, hint, blank, error); now one, as every other error."""
    from click.testing import CliRunner

    from rlsuite.cli import main

    result = CliRunner().invoke(main, args, prog_name="rlsuite")
    assert result.exit_code == 2
    assert_one_line_error(result, *fragments)


def test_small_mistakes_found_by_the_adversarial_trial_are_one_line(tiny_run, tmp_path):
    """Each of these exited 0, wrote something else than asked, or printed more than one line."""
    cases = [
        (["bench", "--sections", ""], "names no section"),  # exited 0 having run nothing
        (["runs", ""], "folder to list is empty"),  # listed the current directory
        (["plot", str(tiny_run), "-o", str(tmp_path / "x.txt")], ".png, .pdf, .svg"),  # wrote x.png
        (["train", "dqn", "CartPole-v1", "--wandb-project", "", "--out", str(tmp_path)], "is empty"),
        (["compare", "sac", "CartPole-v1", "--seeds", "1", "--out", str(tmp_path)], "SAC needs continuous"),  # 3 lines
    ]
    for args, fragment in cases:
        assert_one_line_error(CliRunner().invoke(main, args), fragment)
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "runs").exists()
    broken = tmp_path / "broken"
    shutil.copytree(tiny_run, broken)
    (broken / "metrics.csv").write_text("garbage\n")
    assert_one_line_error(CliRunner().invoke(main, ["plot", str(broken), "-o", str(tmp_path / "c.png")]),
                          "cannot plot", "not an rlsuite metrics.csv")  # was a warning and an error
    result = CliRunner().invoke(main, ["plot", str(tiny_run), "-o", str(tmp_path / "c.svg")])
    assert result.exit_code == 0 and (tmp_path / "c.svg").read_text().lstrip().startswith("<?xml")


def test_api_progress_and_predict_take_only_what_they_mean(tiny_run):
    import numpy as np

    import rlsuite
    from rlsuite.core.errors import UserError

    with pytest.raises(UserError, match="progress must be True or False"):
        rlsuite.train("dqn", "CartPole-v1", steps=100, progress="no")  # 'no' is truthy
    with pytest.raises(UserError, match="progress must be True or False"):
        rlsuite.resume(tiny_run, progress=None)
    policy = rlsuite.load(tiny_run)
    assert policy.predict(np.zeros(4, dtype=np.float32), deterministic=True) in (0, 1)
    assert policy.predict(np.zeros(4, dtype=np.float32), deterministic=False) in (0, 1)  # was a TypeError
