"""Nothing runs that the user did not ask for: run directories someone hands you, child processes, names that
become paths."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from conftest import assert_one_line_error

from rlsuite import runs
from rlsuite.cli import main
from rlsuite.core.child import child_env, module_command
from rlsuite.core.errors import UserError

TINY = {"num_envs": 2, "n_steps": 16, "batch_size": 16, "n_epochs": 1}
PAYLOAD = "from pathlib import Path\nPath(__file__).with_name('RAN').write_text('imported')\n"


@pytest.fixture
def evil_run(tmp_path, monkeypatch):
    """A finished run whose config.yaml names env 'evilmod:CartPole-v1', with evilmod.py beside it and in the
    current directory (on sys.path, as it is for a script or a notebook started there)."""
    run_dir = Path(runs.train("ppo", "CartPole-v1", steps=64, overrides=TINY, out=tmp_path, progress=False)["run_dir"])
    path = run_dir / "config.yaml"
    data = yaml.safe_load(path.read_text())
    data["env_id"] = data["env_card"]["id"] = "evilmod:CartPole-v1"
    path.write_text(yaml.safe_dump(data))
    for folder in (run_dir, tmp_path):
        (folder / "evilmod.py").write_text(PAYLOAD)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("RLSUITE_TRUSTED_MODULES", "")  # recorded, so whatever a test sets is undone after it
    monkeypatch.delitem(sys.modules, "evilmod", raising=False)
    return run_dir


def test_a_run_directory_naming_a_module_is_refused_without_importing_it(evil_run, tmp_path):
    import rlsuite

    for args in (["eval", str(evil_run), "--episodes", "1"], ["train", "--resume", str(evil_run), "--steps", "128"]):
        assert_one_line_error(CliRunner().invoke(main, args), "evilmod", "--trust-imports",
                              "RLSUITE_TRUSTED_MODULES=evilmod", "rlsuite.trust_imports('evilmod')")
    with pytest.raises(UserError, match="trust_imports"):
        rlsuite.evaluate(evil_run, episodes=1)
    with pytest.raises(UserError, match="trust_imports"):
        rlsuite.load(evil_run)
    assert not (tmp_path / "RAN").exists() and not (evil_run / "RAN").exists() and "evilmod" not in sys.modules


def test_trusting_the_imports_lets_the_run_directory_import_them(evil_run, tmp_path, monkeypatch):
    result = CliRunner().invoke(main, ["--trust-imports", "eval", str(evil_run), "--episodes", "1"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "RAN").exists()  # the user allowed it: the module was imported


def test_trust_imports_in_python_names_the_modules(evil_run, tmp_path, monkeypatch):
    import rlsuite

    rlsuite.trust_imports("othermod")
    with pytest.raises(UserError, match="evilmod"):
        rlsuite.evaluate(evil_run, episodes=1)
    rlsuite.trust_imports("evilmod")
    assert rlsuite.evaluate(evil_run, episodes=1)["episodes"] == 1


def _edit_card(run_dir: Path, **changes) -> None:
    path = run_dir / "config.yaml"
    data = yaml.safe_load(path.read_text())
    data["env_card"].update(changes)
    path.write_text(yaml.safe_dump(data))


def test_trusting_a_package_covers_its_modules(evil_run, tmp_path, monkeypatch):
    """docs: rlsuite.trust_imports("mypackage") for env ids such as mypackage.envs:MyEnv-v0."""
    import rlsuite

    pkg = tmp_path / "evilpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "envs.py").write_text(PAYLOAD)
    monkeypatch.delitem(sys.modules, "evilpkg", raising=False)
    monkeypatch.delitem(sys.modules, "evilpkg.envs", raising=False)
    path = evil_run / "config.yaml"
    data = yaml.safe_load(path.read_text())
    data["env_id"] = data["env_card"]["id"] = "evilpkg.envs:CartPole-v1"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(UserError, match="evilpkg.envs"):
        rlsuite.evaluate(evil_run, episodes=1)
    rlsuite.trust_imports("evilpkg")
    assert rlsuite.evaluate(evil_run, episodes=1)["episodes"] == 1 and (pkg / "RAN").exists()


@pytest.mark.parametrize("changes", [
    {"wrappers": [{"name": "evilmod:Wrapper"}]},  # a module in a wrapper, dict form
    {"wrappers": ["evilmod:Wrapper"]},  # ...and string form
    {"wrappers": [{"name": "RecordVideo", "kwargs": {"video_folder": "/tmp/rlsuite-outside", "name_prefix": "../x"}}]},
    {"make_kwargs": {"render_mode": "human"}},
])
def test_a_run_directory_cannot_import_write_or_show_through_its_wrappers(evil_run, tmp_path, changes):
    import rlsuite

    data = yaml.safe_load((evil_run / "config.yaml").read_text())
    data["env_id"] = data["env_card"]["id"] = "CartPole-v1"
    data["env_card"].update(changes)
    (evil_run / "config.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(UserError, match="--trust-imports"):
        rlsuite.evaluate(evil_run, episodes=1)
    assert not (tmp_path / "RAN").exists() and not Path("/tmp/rlsuite-outside").exists()


def test_a_run_directory_with_nan_env_arguments_is_refused(evil_run):
    import rlsuite

    data = yaml.safe_load((evil_run / "config.yaml").read_text())
    data["env_id"] = data["env_card"]["id"] = "CartPole-v1"
    data["env_card"]["make_kwargs"] = {"sutton_barto_reward": float("nan")}
    (evil_run / "config.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(UserError, match="not a finite number"):
        rlsuite.evaluate(evil_run, episodes=1)


def test_child_processes_do_not_import_from_the_current_directory(tmp_path):
    """`python -m` puts the current directory first on sys.path: a json.py there would run in every child."""
    (tmp_path / "json.py").write_text(PAYLOAD)
    done = subprocess.run(module_command("json.tool"), input="{}", cwd=tmp_path, env=child_env(), text=True,
                          capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "RAN").exists()


def test_a_sweep_started_in_a_folder_holding_a_yaml_py_trains_normally(tmp_path, monkeypatch):
    (tmp_path / "yaml.py").write_text(PAYLOAD + "raise SystemExit('the yaml.py of the current folder ran')\n")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["sweep", "ppo", "CartPole-v1", "--seeds", "1", "--steps", "64", "--workers", "1",
                                       "--set", "n_steps=16", "--set", "num_envs=2", "--set", "batch_size=16",
                                       "--set", "lr=1e-3,3e-4", "--out", str(tmp_path), "--quiet"])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "RAN").exists()


@pytest.mark.parametrize("env_id", [".evil:CartPole-v1", "../evil:CartPole-v1", "a/b:CartPole-v1"])
def test_a_module_id_that_is_not_an_absolute_module_name_is_one_line(tmp_path, env_id):
    result = CliRunner().invoke(main, ["train", "ppo", env_id, "--steps", "64", "--out", str(tmp_path)])
    assert_one_line_error(result, "is not a module name")


LONG = "a" * 300


@pytest.mark.parametrize("args, fragment", [
    (["tune", "run", "ppo", "CartPole-v1", "--name", "../../x"], "must be one folder name"),
    (["tune", "run", "ppo", "CartPole-v1", "--name", LONG], "255 at most"),
    (["bench", "--seeds", "-3", "--sections", "cards"], "--seeds -3: give a number of seeds in [1, 100]"),
    (["bench", "--seeds", "0", "--sections", "cards"], "--seeds 0"),
    (["train", "ppo", "CartPole-v1", "--steps", "5000", "--out", f"OUT/{LONG}"], "too long"),
    (["eval", f"OUT/{LONG}"], "too long"),
])
def test_names_that_become_paths_are_confined_and_checked(tmp_path, args, fragment):
    args = [a.replace("OUT", str(tmp_path)) for a in args]
    result = CliRunner().invoke(main, args if args[0] == "eval" or "--out" in args else [*args, "--out", str(tmp_path)])
    assert_one_line_error(result, fragment)
    assert not (tmp_path.parent / "x").exists()


def test_bench_makes_its_missing_out_folder_only_when_it_runs(tmp_path, monkeypatch):
    """A missing --out is created (as train's is), not a traceback; a refused bench leaves no folder."""
    import subprocess as sp

    result = CliRunner().invoke(main, ["bench", "--sections", "nope", "--out", str(tmp_path / "new")])
    assert_one_line_error(result, "unknown benchmark section 'nope'")
    assert not (tmp_path / "new").exists()
    monkeypatch.setattr("rlsuite.cli.subprocess.run", lambda cmd, **kw: sp.CompletedProcess(cmd, 0))
    result = CliRunner().invoke(main, ["bench", "--sections", "cards", "--quiet", "--out", str(tmp_path / "new")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "new").is_dir()


DEEP = "{a: " * 3000 + "1" + "}" * 3000


@pytest.mark.parametrize("args, fragment", [
    (["train", "ppo", "CartPole-v1", "--env-kwargs", "sutton_barto_reward=maybe"], "takes true or false"),
    (["train", "ppo", "CartPole-v1", "--env-kwargs", "sutton_barto_reward=maybe", "--env-backend", "gymnasium"],
     "takes true or false"),
    (["train", "sac", "Pendulum-v1", "--env-kwargs", "g=nan"], "give a finite number"),
    (["train", "sac", "Pendulum-v1", "--env-kwargs", "g=-inf"], "give a finite number"),
    (["train", "sac", "Pendulum-v1", "--env-kwargs", "g=heavy"], "takes a number"),
    (["train", "ppo", "CartPole-v1", "--set", f"lr={DEEP}"], "nested too deeply"),
    (["train", "dqn", "CartPole-v1", "--set", f"epsilon={DEEP}"], "nested too deeply"),
    (["tune", "ppo", "CartPole-v1", "--sampler-seed", "-5", "--trials", "1"], "--sampler-seed must be an integer"),
])
def test_values_that_are_not_valid_end_in_one_line(tmp_path, args, fragment):
    assert_one_line_error(CliRunner().invoke(main, [*args, "--steps", "5000", "--out", str(tmp_path)]), fragment)


def test_env_constructor_errors_end_in_one_line(tmp_path):
    pytest.importorskip("mujoco")
    result = CliRunner().invoke(main, ["train", "ppo", "Hopper-v5", "--env-kwargs", "frame_skip=0", "--steps", "5000",
                                       "--out", str(tmp_path)])
    assert_one_line_error(result, "Hopper-v5 fails with the env arguments", "ZeroDivisionError")


def test_refused_sweeps_and_studies_leave_no_empty_folders(tmp_path):
    out = tmp_path / "o"
    result = CliRunner().invoke(main, ["sweep", "ppo", "CartPole-v1", "--backend", "dask", "--out", str(out)])
    assert_one_line_error(result, "unknown backend 'dask'")
    result = CliRunner().invoke(main, ["tune", "ppo", "CartPole-v1", "--trials", "1", "--storage", "nosuchdb://x/y",
                                       "--out", str(out)])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert not out.exists() or not any(out.rglob("*")), sorted(out.rglob("*"))
