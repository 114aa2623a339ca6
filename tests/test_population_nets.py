"""A population's network is its members' networks: member m of a stacked network computes what network m
computes alone, its gradients are network m's, and its weights load into a network built alone."""

import numpy as np
import pytest
import torch
from torch import nn

from rlsuite.learn.nets import (CNN, MLP, CategoricalHead, GaussianHead, QHead, ValueHead, load_member_state,
                                member_state_dict, stack_members)


def build(kind, seed):
    torch.manual_seed(seed)
    if kind == "mlp-categorical":
        return nn.Sequential(MLP(4, (16, 16), "tanh"), CategoricalHead(16, 3))
    if kind == "mlp-gaussian":
        return nn.Sequential(MLP(3, (8,), "relu"), GaussianHead(8, 2, log_std_init=-0.5 + seed))
    if kind == "mlp-value":
        return nn.Sequential(MLP(6, (8, 8)), ValueHead(8))
    if kind == "cnn-q":
        return nn.Sequential(CNN((10, 10, 4), hidden=32), QHead(32, 5))
    if kind == "cnn-pool":
        return nn.Sequential(CNN((1, 28, 28), convs="small", hidden=16, width=4), QHead(16, 10))
    raise ValueError(kind)


SHAPES = {"mlp-categorical": (4,), "mlp-gaussian": (3,), "mlp-value": (6,), "cnn-q": (10, 10, 4), "cnn-pool": (1, 28, 28)}


def outputs(y):
    if isinstance(y, torch.distributions.Categorical):
        return y.logits
    if isinstance(y, torch.distributions.Normal):
        return torch.cat([y.mean, y.stddev], -1)
    return y


@pytest.mark.parametrize("kind", sorted(SHAPES))
def test_member_m_computes_what_network_m_computes(kind):
    nets = [build(kind, seed) for seed in (0, 1, 2)]
    stacked = stack_members(nets)
    x = torch.randn(3, 5, *SHAPES[kind])
    y = outputs(stacked(x))
    for m, net in enumerate(nets):
        torch.testing.assert_close(y[m], outputs(net(x[m])), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["mlp-categorical", "mlp-gaussian", "cnn-q"])
def test_member_gradients_are_each_networks_own(kind):
    nets = [build(kind, seed) for seed in (3, 4)]
    stacked = stack_members(nets)
    x = torch.randn(2, 7, *SHAPES[kind])
    (outputs(stacked(x)).pow(2).sum(dim=(1, 2))).sum().backward()  # the sum of the members' own losses
    for m, net in enumerate(nets):
        outputs(net(x[m])).pow(2).sum().backward()
        for (name, p), (_, q) in zip(stacked.named_parameters(), net.named_parameters()):
            torch.testing.assert_close(p.grad[m], q.grad, rtol=1e-4, atol=1e-6, msg=f"{name} of member {m}")


def test_weights_round_trip_between_a_population_and_single_networks():
    nets = [build("mlp-gaussian", seed) for seed in (0, 1, 2)]
    stacked = stack_members(nets)
    assert list(stacked.state_dict()) == list(nets[0].state_dict())  # the single network's keys, in its order
    for m, net in enumerate(nets):
        fresh = build("mlp-gaussian", 99)
        fresh.load_state_dict(member_state_dict(stacked, m))
        x = torch.randn(4, 3)
        torch.testing.assert_close(outputs(fresh(x)), outputs(net(x)))
    load_member_state(stacked, 1, nets[2].state_dict())
    np.testing.assert_array_equal(member_state_dict(stacked, 1)["1.log_std"], nets[2].state_dict()["1.log_std"])
    with pytest.raises(ValueError, match="no population form"):
        stack_members([nn.Sequential(nn.Linear(2, 2), nn.BatchNorm2d(2))] * 2)
