"""The registry: an agent is one module, one card and one registry line, and every command then takes it."""

import shutil

from click.testing import CliRunner

import toy_agent
from rlsuite import registry
from rlsuite.cli import main
from rlsuite.config import cards
from rlsuite.registry import AGENTS, agent_names, get_agent, rl_agent


def test_every_rl_agent_has_its_pieces():
    for name in agent_names():
        spec = get_agent(name)
        assert spec.config_cls.agent_name == name
        assert callable(spec.train) and callable(spec.load_policy) and callable(spec.check_spaces)
    assert "supervised" in agent_names(kind=None) and "supervised" not in agent_names()


def test_a_toy_agent_is_one_module_one_card_and_one_registry_line(tmp_path, monkeypatch):
    # the card: a copy of the shipped cards plus one file for the new agent
    root = tmp_path / "cards"
    shutil.copytree(cards.cards_root(), root)
    (root / "agents" / "bandit.yaml").write_text(
        "agent: bandit\ndescription: a bandit learner that ignores the observation\n"
        "default:\n  total_steps: 600\n  epsilon: 0.3\n"
        "envs:\n  CartPole-v1:\n    eval_every: 300\n    eval_episodes: 2\n    final_eval_episodes: 3\n")
    monkeypatch.setattr(cards, "cards_root", lambda: root)
    # the registry line
    monkeypatch.setitem(registry.AGENTS, "bandit", rl_agent("bandit", toy_agent.BanditConfig, toy_agent,
                                                            "a toy bandit learner"))
    runner = CliRunner()

    listed = runner.invoke(main, ["list"])
    assert listed.exit_code == 0 and "bandit" in listed.output and "a toy bandit learner" in listed.output
    fields = runner.invoke(main, ["list", "bandit", "--env", "CartPole-v1"])
    assert fields.exit_code == 0 and "epsilon" in fields.output and "0.3 *" in fields.output

    out = tmp_path / "out"
    run_dirs = []
    for seed in (0, 1):
        trained = runner.invoke(main, ["train", "bandit", "CartPole-v1", "--seed", str(seed), "--out", str(out),
                                       "--quiet"])
        assert trained.exit_code == 0, trained.output
        assert "final evaluation:" in trained.output
        run_dirs.append(trained.output.strip().splitlines()[-1].split("run directory: ")[1])

    evaluated = runner.invoke(main, ["eval", run_dirs[0], "--episodes", "2", "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    assert '"agent": "bandit"' in evaluated.output

    report = tmp_path / "report.md"
    compared = runner.invoke(main, ["compare", f"s0={run_dirs[0]}", f"s1={run_dirs[1]}", "-o", str(report)])
    assert compared.exit_code == 0, compared.output
    assert report.exists() and "s0" in report.read_text()

    bad = runner.invoke(main, ["train", "bandit", "Pendulum-v1", "--out", str(out)])  # its own space check
    assert bad.exit_code != 0 and "BANDIT needs a discrete action space" in bad.output


def test_an_unknown_agent_names_the_close_ones():
    try:
        get_agent("ddqn")
    except Exception as e:  # UserError
        assert "dqn" in str(e) and "available" in str(e)
    else:
        raise AssertionError("get_agent accepted an unknown agent")
    assert set(AGENTS) >= {"dqn", "reinforce", "a2c", "ppo", "sac", "td3", "supervised"}
