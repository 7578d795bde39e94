"""The convolution synapse's node (randhet/csrc/conv.cpp, blocks of 16 samples side by side):
its outputs and its weight and input gradients are torch's conv2d's, bit for bit where every
sum is exact, to rounding otherwise."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from randhet import kernel

pytestmark = pytest.mark.skipif(not kernel.available(), reason="the kernel did not build here")

# (batch, in channels, out channels, height, width, kernel, stride, padding): strides 1 and 2,
# paddings 0 to 2, kernels 1 to 5, odd sizes, batches in and out of the 16-sample blocks
GEOMETRIES = [
    (37, 1, 8, 28, 28, 3, 2, 1),
    (20, 8, 16, 14, 14, 3, 2, 1),
    (5, 3, 5, 9, 7, 3, 1, 1),
    (16, 4, 6, 10, 11, 5, 2, 2),
    (3, 2, 3, 7, 7, 1, 1, 0),
    (17, 2, 4, 6, 6, 2, 2, 0),
    (1, 3, 2, 5, 5, 5, 3, 2),
]


def _both(x: torch.Tensor, w: torch.Tensor, g: torch.Tensor, stride: int, padding: int,
          need_dx: bool) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """(z, dW, dx) from torch's conv2d and from the node, for output gradient g."""
    out = []
    for node in (False, True):
        xi = x.clone().requires_grad_(need_dx)
        wi = w.clone().requires_grad_(True)
        z = (kernel.conv2d(xi, wi, None, (stride, stride), (padding, padding), (1, 1), 1)
             if node else F.conv2d(xi, wi, None, stride, padding))
        assert (z.grad_fn.name() == "torch::autograd::CppNode<Conv2dNode>") is node
        z.backward(g)
        out.append((z.detach(), wi.grad, xi.grad))
    return out[0], out[1]


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=lambda g: "x".join(map(str, g)))
@pytest.mark.parametrize("threads", [1, 2])
def test_exact_sums_give_torchs_gradients_bit_for_bit(geometry, threads) -> None:
    """Small integers in float64: every product and sum is exact, so any order gives torch's
    bits, and a misplaced tap or a lost edge would show."""
    n, cin, cout, h, w_, k, stride, padding = geometry
    gen = torch.Generator().manual_seed(sum(geometry))
    x = torch.randint(-3, 4, (n, cin, h, w_), generator=gen).double()
    w = torch.randint(-3, 4, (cout, cin, k, k), generator=gen).double()
    ho, wo = (h + 2 * padding - k) // stride + 1, (w_ + 2 * padding - k) // stride + 1
    g = torch.randint(-3, 4, (n, cout, ho, wo), generator=gen).double()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        ref, node = _both(x, w, g, stride, padding, need_dx=True)
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(a, b) for a, b in zip(ref, node, strict=True))
    assert node[1].abs().sum() > 0 and node[2].abs().sum() > 0


@pytest.mark.parametrize("geometry", GEOMETRIES[:2], ids=["conv1", "conv2"])
def test_float32_gradients_are_torchs_to_rounding(geometry) -> None:
    """Spikes times weights on the 1/64 grid in float32, as a training step has them: the
    forward's sums are exact, so torch's bits; the gradients sum float products in another
    order; without an input gradient to compute (a first layer) only the weight gradient
    comes back."""
    n, cin, cout, h, w_, k, stride, padding = geometry
    gen = torch.Generator().manual_seed(1)
    x = (torch.rand(n, cin, h, w_, generator=gen) < 0.3).float()
    w = torch.round(torch.randn(cout, cin, k, k, generator=gen) * 32) / 64
    ho, wo = (h + 2 * padding - k) // stride + 1, (w_ + 2 * padding - k) // stride + 1
    g = torch.randn(n, cout, ho, wo, generator=gen)
    for need_dx in (True, False):
        ref, node = _both(x, w, g, stride, padding, need_dx)
        assert torch.equal(ref[0], node[0])
        scale = ref[1].abs().max()
        assert torch.allclose(node[1], ref[1], rtol=0, atol=1e-5 * float(scale))
        if need_dx:
            scale = ref[2].abs().max()
            assert torch.allclose(node[2], ref[2], rtol=0, atol=1e-5 * float(scale))
        else:
            assert node[2] is None


def test_what_the_node_does_not_take_goes_to_torch() -> None:
    """Groups, dilation, a bias, uneven strides, half precision, a non-contiguous input: None
    (the caller runs torch's conv2d)."""
    x, w = torch.rand(2, 4, 6, 6), torch.rand(4, 2, 3, 3)
    assert kernel.conv2d(x, w, None, (1, 1), (1, 1), (1, 1), 2) is None
    w1 = torch.rand(3, 4, 3, 3)
    assert kernel.conv2d(x, w1, None, (1, 1), (1, 1), (2, 2), 1) is None
    assert kernel.conv2d(x, w1, torch.zeros(3), (1, 1), (1, 1), (1, 1), 1) is None
    assert kernel.conv2d(x, w1, None, (1, 2), (1, 1), (1, 1), 1) is None
    assert kernel.conv2d(x.half(), w1.half(), None, (1, 1), (1, 1), (1, 1), 1) is None
    assert kernel.conv2d(x.transpose(2, 3), w1, None, (1, 1), (1, 1), (1, 1), 1) is None
    assert kernel.conv2d(x, w1, None, (1, 1), (1, 1), (1, 1), 1) is not None
