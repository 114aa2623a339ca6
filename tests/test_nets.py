"""Shared networks: CNN shapes for Atari, MinAtar and MNIST observations; heads; init."""

import math

import pytest
import torch

from rlsuite.learn.nets import CNN, MLP, CategoricalHead, ClassifierHead, DuelingQHead, GaussianHead, QHead, ValueHead


@pytest.mark.parametrize(
    "obs_shape, channels_last, batch_shape",
    [
        ((84, 84, 4), True, (2, 84, 84, 4)),  # Atari stack, channels last
        ((4, 84, 84), False, (2, 4, 84, 84)),  # Atari stack from FrameStackObservation
        ((10, 10, 7), True, (2, 10, 10, 7)),  # MinAtar grid
        ((1, 28, 28), False, (2, 1, 28, 28)),  # MNIST digit
        ((28, 28), False, (2, 28, 28)),  # digit without a channel axis
    ],
)
def test_cnn_infers_layout_and_flatten_size(obs_shape, channels_last, batch_shape):
    net = CNN(obs_shape, hidden=32)
    assert net.channels_last == channels_last
    out = net(torch.zeros(batch_shape))
    assert out.shape == (2, 32) and net.out_dim == 32


@pytest.mark.parametrize("obs_shape", [(4, 84, 84), (84, 84, 4), (10, 10, 7), (1, 28, 28)])
def test_cnn_convolves_nhwc_memory_and_computes_what_the_plain_layout_does(obs_shape):
    """The frames reach the convolutions NHWC in memory (faster on the CPU), with the same result as the
    plain NCHW computation: same shape semantics, same flatten order for the layer after."""
    torch.manual_seed(0)
    net = CNN(obs_shape, hidden=32, scale=1 / 255)
    frames = torch.randint(0, 256, (3, *obs_shape), dtype=torch.uint8)
    seen = []
    hook = net.convs[0].register_forward_pre_hook(
        lambda m, args: seen.append(args[0].is_contiguous(memory_format=torch.channels_last)))
    out = net(frames)
    hook.remove()
    nchw = (frames.permute(0, 3, 1, 2) if net.channels_last else frames).float().contiguous() / 255
    with torch.no_grad():
        reference = net.fc(torch.nn.Sequential(*net.convs)(nchw))
    assert seen == [True] and torch.allclose(out, reference, atol=1e-5)


def test_cnn_presets_differ_by_image_size():
    assert len([m for m in CNN((4, 84, 84)).convs if isinstance(m, torch.nn.Conv2d)]) == 3  # Nature CNN
    assert len([m for m in CNN((10, 10, 4)).convs if isinstance(m, torch.nn.Conv2d)]) == 1  # MinAtar
    no_fc = CNN((1, 28, 28), hidden=None)
    assert no_fc.out_dim == 64 * 7 * 7  # two 2x2 pools: 28 -> 7


def test_cnn_scales_uint8_frames():
    net = CNN((1, 12, 12), convs=[(1, 1, 1, 0)], hidden=None, scale=1 / 255)
    with torch.no_grad():
        net.convs[0].weight.fill_(1.0)
    out = net(torch.full((1, 1, 12, 12), 255, dtype=torch.uint8))
    assert torch.allclose(out, torch.ones_like(out))


def test_mlp_flattens_and_exposes_width():
    net = MLP(6, (8, 5))
    assert net(torch.zeros(3, 2, 3)).shape == (3, 5) and net.out_dim == 5


def test_dueling_aggregation():
    head = DuelingQHead(2, 3)
    with torch.no_grad():
        head.value.weight.copy_(torch.tensor([[1.0, 0.0]]))
        head.value.bias.fill_(0.5)
        head.advantage.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        head.advantage.bias.zero_()
    x = torch.tensor([[2.0, 4.0]])
    # V = 2.5, A = [2, 4, 6], mean(A) = 4 -> Q = 2.5 + [-2, 0, 2]
    assert torch.allclose(head(x), torch.tensor([[0.5, 2.5, 4.5]]))
    with torch.no_grad():
        head.advantage.bias.add_(10.0)  # a constant shift of A is absorbed by the mean
    assert torch.allclose(head(x), torch.tensor([[0.5, 2.5, 4.5]]))


def test_heads_shapes_and_init_gains():
    feats = torch.randn(5, 16)
    assert QHead(16, 4)(feats).shape == (5, 4)
    assert ValueHead(16)(feats).shape == (5,)
    assert ClassifierHead(16, 10)(feats).shape == (5, 10)
    policy = CategoricalHead(16, 4)
    assert policy(feats).probs.shape == (5, 4) and policy.mode(feats).shape == (5,)
    gauss = GaussianHead(16, 2, log_std_init=-0.5)
    dist = gauss(feats)
    assert torch.allclose(dist.stddev, torch.full((5, 2), math.exp(-0.5)))
    # Orthogonal init: rows of a (out <= in) weight are orthonormal up to the gain.
    w = policy.logits.weight
    assert torch.allclose(w @ w.T, 0.01**2 * torch.eye(4), atol=1e-6)
    w = QHead(16, 4).out.weight
    assert torch.allclose(w @ w.T, torch.eye(4), atol=1e-5)
