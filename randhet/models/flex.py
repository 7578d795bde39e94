"""The Flex layer (BioFlexNet): ``u = m * Conv(x) + (1 - m) * Pool(x)`` as a RandHet CUBA block.

Tensors are [B, C, H, W, T] in SLAYER units (weights: 1 = 64 Loihi units). A static mask with
the linear (average) pool path is one convolution: the block folds
``W_fold = m * W_conv + (1 - m) * W_pool`` (per output channel) *before* SLAYER's 8-bit weight
hook, so training, export, Lava and the emulator all use the same integer kernel
``Q(W_fold)``. Every other option (dynamic mask, max pooling, the temporal noise ``eta`` while
training) runs the two paths separately and is not deployable on Loihi synapses; a ``pos``
mask (one logit per channel and position) is input-independent but not a convolution, so it
always runs the two paths and is refused at export too.

Plasticity (``FlexSpec.plastic`` = lambda > 0, the poster's ``dm = lambda * (r_sel - r_inv)``):
in training mode each forward also records, without gradient, the activity of the two paths'
contributions to the drive: ``r_sel = mean relu(m * Conv(x))`` and ``r_inv = mean relu((1 - m)
* Pool(x))`` (the conv / selectivity and pool / invariance shares of ``u``, rectified), averaged
over the batch, positions and steps per channel (static mask) or over the batch and steps per
(channel, h, w) (``pos`` mask), i.e. over every axis the mask is shared along; ``m`` is the
mask without ``eta`` noise. :meth:`RandHetFlex.plasticity_step` (called by the trainer after
``optimizer.step()``) then adds ``lambda * (r_sel - r_inv)`` to the mask logits, moving the mask
towards the more active path, and clears the record (the last training forward before the step
counts, i.e. the adversarial examples' forward under FGSM training). Units: the drive's (SLAYER
units; ANN: activations).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from randhet.models.neuron import RandHetConv
from randhet.spec import WEIGHT_SCALE, FlexSpec, NeuronSpec


def pool_source_channels(in_channels: int, out_channels: int) -> torch.Tensor:
    """Input channel feeding each output channel of the pool path (nearest interpolation)."""
    return torch.arange(out_channels) * in_channels // out_channels


def pool_kernel(spec: FlexSpec) -> torch.Tensor:
    """The average-pool path as a convolution kernel [out, in, K, K, 1] (SLAYER units).

    ``W_pool[o, i] = 1 / K**2`` where ``i`` is output channel o's source channel, else 0.
    """
    c_in, k = spec.in_shape[0], spec.kernel
    w = torch.zeros(spec.out_channels, c_in, k, k, 1)
    src = pool_source_channels(c_in, spec.out_channels)
    w[torch.arange(spec.out_channels), src] = 1.0 / (k * k)
    return w


def add_mask_parameters(block: torch.nn.Module, spec: FlexSpec, norm: type) -> None:
    """The mask's parameters on a Flex block: ``mask_logit`` per channel (static) or per
    (channel, h, w) (pos), else ``theta`` per channel and the ``norm`` layer (dynamic)."""
    c = spec.out_channels
    if spec.mask == "static":
        block.mask_logit = torch.nn.Parameter(torch.zeros(c))
    elif spec.mask == "pos":
        block.mask_logit = torch.nn.Parameter(torch.zeros(spec.out_shape))
    else:
        block.theta = torch.nn.Parameter(torch.zeros(c))
        block.norm = norm(c)


class FlexPaths:
    """The mask, pool path and plasticity shared by the spiking and the ANN Flex layer.

    Tensors are [B, C, H, W, T] (spiking) or [B, C, H, W] (ANN): a trailing time axis is
    recognised by the rank. The host module holds ``spec`` (a FlexSpec), ``generator``,
    ``pool_source``, the mask's parameters (:func:`add_mask_parameters`), ``last_mask`` and
    ``path_rates``.
    """

    spec: FlexSpec
    generator: torch.Generator | None
    pool_source: torch.Tensor
    mask_logit: torch.nn.Parameter
    theta: torch.nn.Parameter
    norm: torch.nn.Module
    training: bool
    last_mask: torch.Tensor | None
    path_rates: tuple[torch.Tensor, torch.Tensor] | None

    def _gate(self, logits: torch.Tensor) -> torch.Tensor:
        return F.hardsigmoid(logits) if self.spec.gate == "hard" else torch.sigmoid(logits)

    @staticmethod
    def _time(x: torch.Tensor) -> tuple[int, ...]:
        """The trailing axes after (H, W): (1,) with a time axis, () without."""
        return (1,) if x.dim() == 5 else ()

    def _learned_logits(self, like: torch.Tensor) -> torch.Tensor:
        """The static or ``pos`` mask logits, broadcastable to ``like``'s shape."""
        c, time = self.spec.out_channels, self._time(like)
        if self.spec.mask == "static":
            return self.mask_logit.reshape(1, c, 1, 1, *time)
        return self.mask_logit.reshape(1, *self.mask_logit.shape, *time)

    def pool_path(self, x: torch.Tensor) -> torch.Tensor:
        """Pool(x): KxK avg (zeros counted) or max pooling, stride 1, channel-interpolated to
        C_out (output channel o takes input channel ``pool_source[o]``)."""
        k, p = self.spec.kernel, self.spec.padding
        time = self._time(x)
        size, stride, pad = (k, k, *time), 1, (p, p, *(0 for _ in time))
        if self.spec.pool == "avg":
            avg = F.avg_pool3d if time else F.avg_pool2d
            pooled = avg(x, size, stride, pad, count_include_pad=True)
        else:
            pooled = (F.max_pool3d if time else F.max_pool2d)(x, size, stride, pad)
        return pooled.index_select(1, self.pool_source.to(x.device))

    def mask(self, pooled: torch.Tensor) -> torch.Tensor:
        """m, broadcastable to ``pooled``: the learned (static or pos) mask, or dynamic
        ``gate(BatchNorm(P - theta))`` per sample, channel, position (and step); in training,
        plus ``eta`` noise per sample and channel (and step)."""
        c, time = self.spec.out_channels, self._time(pooled)
        if self.spec.mask == "dynamic":
            logits = self.norm(pooled - self.theta.reshape(1, c, 1, 1, *time))
        else:
            logits = self._learned_logits(pooled)
        if self.training and self.spec.eta > 0:
            size = (pooled.shape[0], c, 1, 1, *pooled.shape[4:])
            noise = torch.randn(size, generator=self.generator)
            logits = logits + self.spec.eta * noise.to(pooled.device, pooled.dtype)
        return self._gate(logits)

    def record_path_rates(self, conv: torch.Tensor, pooled: torch.Tensor) -> None:
        """``path_rates = (r_sel, r_inv)`` from the two paths' outputs, shaped like
        ``mask_logit``: the rectified shares of the drive averaged over every axis the mask is
        shared along (static: batch, positions, steps; pos: batch, steps)."""
        with torch.no_grad():
            m = self._gate(self._learned_logits(conv))
            shared = (0, *range(2, conv.dim())) if self.spec.mask == "static" else (0, 4)
            dims = tuple(d for d in shared if d < conv.dim())
            self.path_rates = (F.relu(m * conv).mean(dims), F.relu((1 - m) * pooled).mean(dims))

    @torch.no_grad()
    def plasticity_step(self) -> torch.Tensor | None:
        """``mask_logit += lambda * (r_sel - r_inv)`` from the last training forward's
        ``path_rates``; returns the logit change, or None (a no-op) without plasticity or without
        a recorded forward. Called by the trainer after every ``optimizer.step()``."""
        if self.spec.plastic <= 0 or self.path_rates is None:
            return None
        r_sel, r_inv = self.path_rates
        self.path_rates = None
        dm = self.spec.plastic * (r_sel - r_inv).to(self.mask_logit.dtype)
        self.mask_logit.add_(dm)
        return dm


class RandHetFlex(FlexPaths, RandHetConv):
    """Flex layer: a SLAYER conv synapse, a pool path, a mask and RandHet CUBA neurons.

    Parameters: ``synapse.weight`` (W_conv), ``mask_logit`` [C_out] (static mask) or
    [C_out, H, W] (``pos`` mask) or ``theta`` [C_out] and ``norm`` (BatchNorm of the dynamic
    mask). ``quantize = False`` is
    the float model (no 8-bit hook; the static mask still folds). ``last_mask`` holds the
    latest mask values (for analysis).
    """

    def __init__(
        self, neuron: NeuronSpec, spec: FlexSpec, generator: torch.Generator | None = None
    ) -> None:
        super().__init__(neuron, spec.as_conv(), generator)
        self.spec = spec  # type: ignore[assignment]
        self.generator = generator
        self.quantize = True
        self.last_mask: torch.Tensor | None = None
        c = spec.out_channels
        self.register_buffer("pool_weight", pool_kernel(spec), persistent=False)
        self.register_buffer(
            "pool_source", pool_source_channels(spec.in_shape[0], c), persistent=False
        )
        self.path_rates: tuple[torch.Tensor, torch.Tensor] | None = None
        add_mask_parameters(self, spec, torch.nn.BatchNorm3d)
        self.synapse.pre_hook_fx = self._weight_hook

    @property
    def folds(self) -> bool:
        """Whether the synapse carries the folded kernel (static mask, average pool)."""
        return self.spec.deployable

    def static_mask(self) -> torch.Tensor:
        """The static mask m [C_out] (0..1): the share of the conv path per output channel."""
        return self._gate(self.mask_logit)

    def folded_weight(self, weight: torch.Tensor | None = None) -> torch.Tensor:
        """``m * W_conv + (1 - m) * W_pool`` [out, in, K, K, 1], before quantization."""
        w = self.synapse.weight if weight is None else weight
        m = self.static_mask().reshape(-1, 1, 1, 1, 1)
        return m * w + (1 - m) * self.pool_weight.to(w.dtype)

    def _weight_hook(self, weight: torch.Tensor, descale: bool = False) -> torch.Tensor:
        """SLAYER's ``pre_hook_fx``: fold (when deployable), then quantize to 8 bits."""
        w = self.folded_weight(weight) if self.folds else weight
        if self.quantize:
            return self.neuron.quantize_8bit(w, descale=descale)
        return w * WEIGHT_SCALE if descale else w

    def conv_path(self, x: torch.Tensor) -> torch.Tensor:
        """Conv(x) [B, C_out, H, W, T] with the (quantized, unfolded) conv kernel alone."""
        w = self.synapse.weight
        w = self.neuron.quantize_8bit(w) if self.quantize else w
        p = self.spec.padding
        return F.conv3d(x, w, None, 1, (p, p, 0))

    def unfolded_drive(self, x: torch.Tensor) -> torch.Tensor:
        """``m * Conv(x) + (1 - m) * Pool(x)`` computed path by path (before the drive grid)."""
        pooled = self.pool_path(x)
        m = self.mask(pooled)
        self.last_mask = m.detach()
        return m * self.conv_path(x) + (1 - m) * pooled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Spikes [B, C_out, H, W, T] for input spikes [B, C_in, H, W, T]."""
        if self.training and self.spec.plastic > 0:
            with torch.no_grad():
                self.record_path_rates(self.conv_path(x), self.pool_path(x))
        if self.folds and not (self.training and self.spec.eta > 0):
            self.last_mask = self.static_mask().detach()
            z = self.synapse(x)  # the folded, quantized kernel: what Loihi runs
        else:
            z = self.unfolded_drive(x)
        return self.neuron(z, on_grid=self.integer_drive)
