"""Cards: one budget per (agent, env), read the same way by every command."""

import pytest

from rlsuite.config import cards
from rlsuite.config.cards import budget, load_env_card, resolve
from rlsuite.core.errors import UserError
from rlsuite.registry import get_agent
from rlsuite.sb3.hyperparameters import SB3_ALGORITHMS, baseline_fingerprint, baseline_hyperparameters


def every_card_pair():
    for agent in SB3_ALGORITHMS:
        card = cards.load_agent_card(agent)
        for env_id in sorted(set(card.get("envs") or {}) | set(card.get("baseline") or {})):
            if "*" not in env_id:
                yield agent, env_id


def test_train_and_baseline_get_the_same_budget_everywhere():
    for agent, env_id in every_card_pair():
        ours = resolve(agent, get_agent(agent).config_cls, env_id)[0].total_steps
        assert baseline_fingerprint(agent, env_id)["steps"] == ours == budget(agent, get_agent(agent).config_cls, env_id)


def test_a2c_lunarlander_trains_the_env_cards_budget_on_both_sides():
    # the zoo trains A2C on LunarLander for 200k steps; the one budget is the env card's
    card_budget = load_env_card("LunarLander-v3").budget_for("a2c")
    assert baseline_hyperparameters("a2c", "LunarLander-v3")[0]["n_timesteps"] != card_budget
    assert budget("a2c", get_agent("a2c").config_cls, "LunarLander-v3") == card_budget
    assert baseline_fingerprint("a2c", "LunarLander-v3")["steps"] == card_budget


def test_a_budget_written_in_two_places_is_one_line_naming_both(tmp_path, monkeypatch):
    (tmp_path / "agents").mkdir()
    (tmp_path / "envs").mkdir()
    (tmp_path / "agents" / "dqn.yaml").write_text("default: {}\nenvs:\n  CartPole-v1:\n    total_steps: 7000\n")
    (tmp_path / "envs" / "CartPole-v1.yaml").write_text("id: CartPole-v1\nbudget: {dqn: 5000}\n")
    monkeypatch.setattr(cards, "cards_root", lambda: tmp_path)
    with pytest.raises(UserError) as e:
        resolve("dqn", get_agent("dqn").config_cls, "CartPole-v1")
    assert "dqn.yaml [CartPole-v1]" in str(e.value) and "CartPole-v1.yaml" in str(e.value) and "\n" not in str(e.value)
    # in the env card alone it is the budget; --set still overrides it for one command
    (tmp_path / "agents" / "dqn.yaml").write_text("default: {total_steps: 9000}\n")
    assert resolve("dqn", get_agent("dqn").config_cls, "CartPole-v1")[0].total_steps == 5000
    assert resolve("dqn", get_agent("dqn").config_cls, "CartPole-v1", {"total_steps": "800"})[0].total_steps == 800
    (tmp_path / "envs" / "CartPole-v1.yaml").write_text("id: CartPole-v1\n")
    assert resolve("dqn", get_agent("dqn").config_cls, "CartPole-v1")[0].total_steps == 9000
