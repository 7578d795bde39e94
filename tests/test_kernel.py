"""The fused CUBA kernel gives the per-step loop's integers and gradients bit for bit (and the
loop's strides; the fused training neuron's spikes are stored as its input is); without it,
the loop runs after one line on stderr."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from randhet import kernel, loihi
from randhet.decays import DecayDraw, mean_decay_int
from randhet.layer_tokens import network_from_tokens
from randhet.models.neuron import RandHetNeuron
from randhet.models.spiking import SpikingNetwork
from randhet.spec import EncodingSpec, NeuronSpec

pytestmark = pytest.mark.skipif(not kernel.available(), reason="the kernel did not build here")

SHAPES = {"dense": (5, 33, 16), "conv": (3, 4, 5, 5, 12)}


def _same(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    """Equal values, dtype and strides (downstream reductions follow the strides)."""
    if a is None or b is None:
        return a is b
    return torch.equal(a, b) and a.dtype == b.dtype and a.stride() == b.stride()


def _values(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    """Equal values and dtype (the fused neuron's spikes are stored as its input is, so that
    the next synapse reads them without a copy; the synapse's sums are exact either way)."""
    if a is None or b is None:
        return a is b
    return torch.equal(a, b) and a.dtype == b.dtype


def _both(fn):  # type: ignore[no-untyped-def]
    """fn() with the kernel, then with the loop."""
    fused = fn()
    with kernel.loop_only():
        loop = fn()
    return fused, loop


@pytest.mark.parametrize("layer", sorted(SHAPES))
@pytest.mark.parametrize("per_step", [False, True], ids=["per-sample", "per-step"])
@pytest.mark.parametrize("clip", [None, "wrap", "wrap_twos", "saturate"])
@pytest.mark.parametrize("threshold", [None, 5121, 5120.0, 5120.3])
def test_integrate_forward_is_the_loop_bit_for_bit(layer, per_step, clip, threshold) -> None:
    g = torch.Generator().manual_seed(len(layer) + 7 * per_step)
    shape = SHAPES[layer]
    # drives near the 24-bit edges, so the wrap and the saturation act
    drive = torch.randint(-3 << 22, 3 << 22, shape, generator=g)
    d_shape = shape if per_step else shape[:-1]
    d = torch.randint(0, 4097, d_shape, generator=g)
    fused, loop = _both(lambda: loihi.integrate(drive, d, threshold, clip))
    assert all(_same(a, b) for a, b in zip(fused, loop, strict=True))
    if threshold is not None:
        assert (fused[0] >= threshold).any()  # spikes (and resets) happen
    if clip is not None:
        assert (drive.abs() > 1 << 23).any()


@pytest.mark.parametrize("hardware", [False, True])
@pytest.mark.parametrize("wrap", ["lava", "twos_complement"])
@pytest.mark.parametrize("bits", [None, 16])
@pytest.mark.parametrize("layer", sorted(SHAPES))
def test_cuba_is_the_loop_bit_for_bit_with_and_without_the_datapath(hardware, wrap, bits,
                                                                    layer) -> None:
    g = torch.Generator().manual_seed(3)
    shape = SHAPES[layer]
    drive = torch.randint(-3 << 22, 3 << 22, shape, generator=g)
    du = torch.randint(1, 4097, shape[:-1], generator=g)  # per sample
    dv = torch.randint(0, 4096, shape, generator=g)  # per step
    datapath = loihi.Datapath(synaptic_input_bits=bits, current_wrap=wrap)
    fused, loop = _both(lambda: loihi.cuba(drive, du, dv, 80, hardware, datapath))
    assert all(_same(a, b) for a, b in zip(fused, loop, strict=True))
    assert fused[2].any()


def _integrator(x: torch.Tensor, d: torch.Tensor, threshold: float | None,
                ) -> tuple[torch.Tensor, ...]:
    x = x.clone().requires_grad_(True)
    d = d.clone().requires_grad_(True)
    y = loihi.LeakyIntegrator.apply(x, d, threshold)
    w = torch.randn(y.shape, generator=torch.Generator().manual_seed(1), dtype=y.dtype)
    (y * w).sum().backward()
    return y.detach(), x.grad, d.grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("decays", ["mean", "channel", "neuron", "step"])
@pytest.mark.parametrize("threshold", [None, 1.25])
def test_integrator_forward_input_and_decay_gradients_are_the_loop_bit_for_bit(
        dtype, decays, threshold) -> None:
    g = torch.Generator().manual_seed(5)
    shape = (4, 6, 5, 5, 16)
    x = torch.round(torch.randn(shape, generator=g, dtype=dtype) * 96) / 256
    d_shape = {"mean": (1,), "channel": (6, 1, 1), "neuron": shape[:-1], "step": shape}[decays]
    d = torch.randint(0, 4097, d_shape, generator=g).to(dtype)
    fused, loop = _both(lambda: _integrator(x, d, threshold))
    assert all(_same(a, b) for a, b in zip(fused, loop, strict=True))
    assert fused[2].abs().sum() > 0


def _neuron_step(spec: NeuronSpec, shape: tuple[int, ...], x: torch.Tensor,
                 straight_through: bool) -> tuple[torch.Tensor | None, ...]:
    """Spikes, dL/dx and the mean decays' gradients of a RandHet neuron, one seeded draw."""
    neuron = RandHetNeuron(spec, shape[1:-1], torch.Generator().manual_seed(3))
    neuron.straight_through = straight_through
    x = x.clone().requires_grad_(True)
    s = neuron(x)
    w = torch.randn(s.shape, generator=torch.Generator().manual_seed(1), dtype=s.dtype)
    (s * w).sum().backward()
    return s.detach(), x.grad, neuron.mean_current_decay.grad, neuron.mean_voltage_decay.grad


@pytest.mark.parametrize("layer", sorted(SHAPES))
@pytest.mark.parametrize("draw", ["sigma0", "sample", "step", "learn", "channel"])
@pytest.mark.parametrize("straight_through", [False, True], ids=["surrogate", "ste"])
@pytest.mark.parametrize("layout", ["time-last", "time-major"])
def test_the_fused_neuron_is_the_integrators_and_spike_function_bit_for_bit(
        layer, draw, straight_through, layout) -> None:
    """RandHetNeuron's one-call forward and backward (loihi.cuba_spikes) against
    LeakyIntegrator twice and SLAYER's Spike (the loop): spikes, input and decay gradients."""
    shape = SHAPES[layer]
    spec = NeuronSpec(threshold=1.25, current_decay=0.25, voltage_decay=0.03,
                      sigma=0.0 if draw == "sigma0" else 1.0,
                      resample="step" if draw == "step" else "forward",
                      learn_decay=draw in ("learn", "step"),
                      granularity="channel" if draw == "channel" and layer == "conv"
                      else "neuron")
    g = torch.Generator().manual_seed(11)
    x = torch.round(torch.randn(shape, generator=g) * 1.5 * 64) / 64  # Loihi's drive grid
    if layout == "time-major":  # stored as the loop's outputs are
        x = x.movedim(-1, 0).contiguous().movedim(0, -1)
    fused, loop = _both(lambda: _neuron_step(spec, shape, x, straight_through))
    assert fused[0].stride() == x.stride()  # the fused call ran: its spikes are laid out as x
    assert all(_values(a, b) for a, b in zip(fused, loop, strict=True))
    assert fused[0].sum() > 0 and fused[1].abs().sum() > 0
    if spec.learn_decay:
        assert fused[2].abs().sum() > 0 and fused[3].abs().sum() > 0


@pytest.mark.parametrize("layer", sorted(SHAPES))
@pytest.mark.parametrize("repeated", [False, True], ids=["drive", "repeated-drive"])
def test_the_fused_neuron_without_a_gradient_writes_the_same_spikes(layer, repeated) -> None:
    """With no backward to come, the fused neuron writes the spikes alone (no voltage, no
    states): the bits of the graded call and of the loop. A drive repeated over time (stride
    0, as direct encoding gives) is read as it is: its spikes are stored as the loop's."""
    shape = SHAPES[layer]
    spec = NeuronSpec(threshold=1.25, sigma=1.0, learn_decay=True)
    x = torch.round(torch.randn(shape, generator=torch.Generator().manual_seed(12)) * 96) / 64
    if repeated:
        x = x[..., :1].expand(shape)

    def spikes(grad: bool) -> torch.Tensor:
        neuron = RandHetNeuron(spec, shape[1:-1], torch.Generator().manual_seed(3))
        with torch.set_grad_enabled(grad):
            s = neuron(x.detach().requires_grad_(grad), on_grid=True)
        assert s.requires_grad == grad
        return s.detach()

    plain, loop = _both(lambda: spikes(False))
    graded = spikes(True)
    assert plain.sum() > 0 and _same(plain, graded) and _values(plain, loop)
    if repeated:
        assert _same(plain, loop) and plain.movedim(-1, 0).is_contiguous()


@pytest.mark.parametrize("threads", [1, 2])
def test_many_chunks_on_one_and_two_threads_are_the_loop_bit_for_bit(threads) -> None:
    """Rows over several of the kernel's chunks (512 rows) and part of another, on one and
    two threads: a CUBA layer on the integer datapath and the training neuron (spikes, input
    and decay gradients) give the loop's bits."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        g = torch.Generator().manual_seed(21)
        shape = (9, 130, 11)  # 1170 rows: two whole chunks and part of a third
        drive = torch.randint(-3 << 22, 3 << 22, shape, generator=g)
        du = torch.randint(1, 4097, shape[:-1], generator=g)
        dv = torch.randint(0, 4096, shape, generator=g)
        fused, loop = _both(lambda: loihi.cuba(drive, du, dv, 80, True))
        assert all(_same(a, b) for a, b in zip(fused, loop, strict=True)) and fused[2].any()
        spec = NeuronSpec(threshold=1.25, sigma=1.0, learn_decay=True)
        x = torch.round(torch.randn(shape, generator=g) * 96) / 64
        fused, loop = _both(lambda: _neuron_step(spec, shape, x, False))
        assert all(_values(a, b) for a, b in zip(fused, loop, strict=True))
        assert fused[0].sum() > 0 and fused[2].abs().sum() > 0
    finally:
        torch.set_num_threads(before)


def test_the_fused_neuron_holds_for_float64_defaults() -> None:
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        spec = NeuronSpec(sigma=1.0, learn_decay=True)
        x = torch.round(torch.randn((4, 9, 20), generator=torch.Generator().manual_seed(4))
                        * 96) / 64
        fused, loop = _both(lambda: _neuron_step(spec, (4, 9, 20), x, False))
    finally:
        torch.set_default_dtype(before)
    assert fused[0].dtype == torch.float64
    assert all(_values(a, b) for a, b in zip(fused, loop, strict=True))


def test_the_fused_neuron_leaves_its_vectorized_path_where_doubles_would_round() -> None:
    """The forward holds the integers in doubles (exact while |state| < 2**41) and hands over
    to the int64 scan beyond that. Three steps of drives near -2**28 SLAYER units build states
    of ~2**43 with every low bit set, whose products with the decays no double holds exactly;
    a fourth drive, computed from the loop's integers, brings each voltage back near zero,
    where the surrogate gradient reads it to the last unit."""
    spec = NeuronSpec(threshold=1.25, current_decay=0.25, voltage_decay=0.03, sigma=0.0)
    neurons = 4096
    x = torch.zeros(1, neurons, 6)
    x[..., :3] = -(torch.rand(1, neurons, 3, generator=torch.Generator().manual_seed(8)) + 1) \
        * 2.0 ** 28
    keep_u = loihi.DECAY_UNITY - mean_decay_int(spec.current_decay)
    keep_v = loihi.DECAY_UNITY - mean_decay_int(spec.voltage_decay)
    with kernel.loop_only():
        u, _ = loihi.integrate((x * 4096).to(torch.int64), torch.tensor(4096 - keep_u), None)
        v, _ = loihi.integrate(u, torch.tensor(4096 - keep_v), None)
    cancel = -(v[..., 2] * keep_v).div(4096, rounding_mode="trunc") \
        - (u[..., 2] * keep_u).div(4096, rounding_mode="trunc")
    x[..., 3] = cancel.float() / 4096
    assert (u[..., 2].abs() > 2 ** 41).all()
    fused, loop = _both(lambda: _neuron_step(spec, (1, neurons, 6), x, False))
    assert all(_values(a, b) for a, b in zip(fused, loop, strict=True))
    assert (fused[1][..., 3] != 0).all()  # the gradient sees the voltage at the fourth step


def test_the_fused_neuron_takes_decays_beyond_the_register_range() -> None:
    """Decays outside 0..4096 (a negative one keeps more than the state) leave the
    vectorized forward for the int64 scan: the loop's bits, forward and backward."""
    shape = (3, 40, 10)
    g = torch.Generator().manual_seed(9)
    x = torch.round(torch.randn(shape, generator=g) * 96) / 64

    def step() -> tuple[torch.Tensor | None, ...]:
        neuron = RandHetNeuron(NeuronSpec(threshold=1.25, sigma=1.0), shape[1:-1])
        d = torch.randint(-40, 4200, (2, *shape[:-1]),
                          generator=torch.Generator().manual_seed(2)).double()
        d[0, 0, :4] = torch.tensor([-0.5, 4096.5, -7.0, 4100.0])
        neuron.fixed_draw = DecayDraw(d[0], d[1])
        xg = x.clone().requires_grad_(True)
        s = neuron(xg, on_grid=True)
        s.backward(torch.randn(s.shape, generator=torch.Generator().manual_seed(1)))
        return s.detach(), xg.grad

    fused, loop = _both(step)
    assert all(_values(a, b) for a, b in zip(fused, loop, strict=True)) and fused[0].sum() > 0


def test_the_surrogate_exponential_keeps_torchs_bits_for_odd_sizes() -> None:
    """torch's exp runs vectorized and finishes a tail with the scalar one; the kernel's
    surrogate must give every element the bits torch gives it (sizes not a multiple of 16)."""
    spec = NeuronSpec(threshold=1.25, current_decay=0.25, voltage_decay=0.03, sigma=0.0)
    for shape in ((1, 1, 7), (3, 5, 13), (2, 37, 9)):
        x = torch.round(torch.randn(shape, generator=torch.Generator().manual_seed(6)) * 128) / 64
        fused, loop = _both(lambda shape=shape, x=x: _neuron_step(spec, shape, x, False))
        assert all(_values(a, b) for a, b in zip(fused, loop, strict=True))


@pytest.mark.parametrize("tokens", [["dense:24"], ["conv:4:k3", "pool:2", "flatten", "dense:8"]],
                         ids=["dense", "conv"])
@pytest.mark.parametrize("resample", ["forward", "step"])
def test_a_training_step_is_the_loop_bit_for_bit(tokens, resample, monkeypatch) -> None:
    # the convolutions as torch runs them in both (their own node is tests/test_conv.py's)
    monkeypatch.setattr(kernel, "conv2d", lambda *args: None)
    neuron = NeuronSpec(threshold=1.25, current_decay=0.25, voltage_decay=0.03, sigma=1.0,
                        resample=resample, learn_decay=True)
    spec = network_from_tokens((1, 8, 8), tokens, 10, neuron, EncodingSpec(timesteps=12))
    x = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    y = torch.arange(8) % 10

    def step() -> tuple[torch.Tensor, ...]:
        torch.manual_seed(0)  # the weights' initialisation
        net = SpikingNetwork(spec, seed=0)
        logits = net(x)
        F.cross_entropy(logits, y).backward()
        return (logits.detach(),) + tuple(p.grad for p in net.parameters() if p.grad is not None)

    fused, loop = _both(step)
    assert len(fused) > 2 and all(torch.equal(a, b) for a, b in zip(fused, loop, strict=True))


def test_a_cpu_training_step_takes_the_one_call_paths() -> None:
    """With the extension built, a CPU block records the neuron and the weight hook as one C++
    node each and draws its decays in one call; with the kernel off, the Python steps."""
    from randhet import decays
    from randhet.models.neuron import RandHetDense

    spec = NeuronSpec(sigma=1.0)
    block = RandHetDense(spec, 6, 5)
    means = (block.neuron.mean_current_decay, block.neuron.mean_voltage_decay)
    x = torch.rand(2, 6, 8)
    assert block(x).grad_fn.name() == "torch::autograd::CppNode<NeuronNode>"
    assert block._hooked_weight().grad_fn.name() == "torch::autograd::CppNode<Quantize8bitNode>"
    assert decays._draw_extension(spec, *means, None) is kernel.extension()
    with kernel.loop_only():
        assert "CppNode" not in block(x).grad_fn.name()
        assert "CppNode" not in block._hooked_weight().grad_fn.name()
        assert decays._draw_extension(spec, *means, None) is None


def test_a_cpu_conv_block_takes_the_conv_node() -> None:
    """A convolution synapse runs the extension's conv node (torch's own conv2d with the
    kernel off, and for the depthwise convolutions of pooling)."""
    from randhet.models.neuron import RandHetConv
    from randhet.spec import ConvSpec

    spec = NeuronSpec(sigma=1.0)
    conv = RandHetConv(spec, ConvSpec(in_shape=(2, 6, 6), out_channels=3, kernel=3, stride=2,
                                      padding=1))
    pool = RandHetConv(spec, ConvSpec(in_shape=(2, 6, 6), out_channels=2, kernel=2, stride=2,
                                      padding=0, pool=True))
    x = torch.rand(2, 2, 6, 6, 5)

    def synapse_node(block: torch.nn.Module) -> str:
        fn = block.drive(x).grad_fn  # the view back to [B, C, H, W, T], then the synapse
        while fn is not None and fn.name() in ("PermuteBackward0", "ViewBackward0"):
            fn = fn.next_functions[0][0]
        return "" if fn is None else fn.name()

    assert synapse_node(conv) == "torch::autograd::CppNode<Conv2dNode>"
    assert "Conv2dNode" not in synapse_node(pool)
    with kernel.loop_only():
        assert "Conv2dNode" not in synapse_node(conv)


def test_turned_off_by_the_environment_the_loop_runs(monkeypatch) -> None:
    monkeypatch.setenv("RANDHET_KERNEL", "loop")
    assert not kernel.available()
    assert kernel.integrate(torch.zeros(2, 3, dtype=torch.int64), torch.full((2,), 4096),
                            None, None, True, False) is None


def test_a_failed_build_says_so_in_one_line_and_the_loop_runs(tmp_path, monkeypatch,
                                                               capsys) -> None:
    broken = tmp_path / "broken.cpp"
    broken.write_text("#error this machine has no working compiler\n")
    monkeypatch.setattr(kernel, "SOURCE", broken)
    (tmp_path / "draws.cpp").write_text("#error no compiler\n")  # fails as fast as the first
    monkeypatch.setattr(kernel, "DRAWS", tmp_path / "draws.cpp")
    monkeypatch.setattr(kernel, "CONV", tmp_path / "draws.cpp")
    monkeypatch.setattr(kernel, "NAME", "randhet_cuba_broken_test")
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "ext"))
    monkeypatch.setattr(kernel, "_state", {**kernel._state, "ext": None, "tried": False,
                                           "off": False})
    drive = torch.randint(0, 9000, (3, 4, 10), generator=torch.Generator().manual_seed(0))
    d = torch.full((3, 4), 1024)
    pre, post = loihi.integrate(drive, d, 5000)
    err = capsys.readouterr().err.strip().splitlines()
    # the progress line of a first build, then the one line of the failure
    assert err[:-1] == ["randhet: building the fused CUBA kernel (once per machine, a minute "
                        "or two) ..."]
    assert "did not build" in err[-1] and "per-step loop" in err[-1]
    assert not kernel.available()  # tried once, not again
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(kernel, "_state", {"ext": None, "tried": False, "off": True})
    expect = loihi.integrate(drive, d, 5000)
    assert _same(pre, expect[0]) and _same(post, expect[1])
