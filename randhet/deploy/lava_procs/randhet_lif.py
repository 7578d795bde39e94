"""RandHetLIF: Loihi CUBA-LIF neurons whose decays are redrawn for every sample.

The Process holds a pre-drawn table of integer decays (samples x neurons, SLAYER/netx
convention: effective decay d in 0..4096, the state keeps (4096 - d) / 4096 per step). Samples
stream through the network back to back, ``timesteps`` steps each. At the first step of each
of its sample windows the neuron zeroes u and v and loads that sample's decays. The dynamics are
Lava's own bit-accurate CUBA code (``AbstractPyLifModelFixed``: 24-bit wrap of u, saturation of
v, strict threshold), or the chip's datapath where a hardware profile knows it (``q_bits``: the
signed width the summed synaptic input ``a << 6`` wraps to; ``twos_complement``: u wraps as a
24-bit register, see :class:`randhet.loihi.Datapath`). Each neuron records its spike raster of
sample s as bits of ``spike_words[s, k // WORD_BITS]`` (bit ``k % WORD_BITS`` = spike at step k
of the sample) and counts its active neuron updates (steps in which u or v is nonzero after
integration) in ``active_steps[s]``.

Lava reads every Var back element by element as a float64 (``PyLoihiProcessModel._get_var``),
which holds integers exactly only up to 2**53: a raster packed into one int64 would lose its
steps from 53 on. Words of 32 bits come back exactly.

Timing (Lava time steps start at 1): this layer's window of sample s covers the time steps
``offset + s * timesteps + 1 ... offset + (s + 1) * timesteps``.
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.lif.models import AbstractPyLifModelFixed

from randhet.deploy.lava_procs import WORD_BITS, raster_words

MAX_TIMESTEPS = 63  # the configs' bound on steps per sample


class RandHetLIF(AbstractProcess):
    """CUBA-LIF neurons with a per-sample decay table.

    Parameters
    ----------
    shape : neuron shape (Lava order: (n,) or (x, y, channels)).
    current_decays, voltage_decays : int arrays, values 0..4096, [samples, *shape] (one draw per
        sample) or [samples, timesteps, *shape] (one draw per sample and step).
    vth : threshold mantissa (``vThMant``); the neuron spikes when ``v > vth << 6``.
    timesteps : steps per sample (1..63).
    offset : time steps before this layer's first sample window (pipeline latency).
    q_bits : signed width of the summed synaptic input ``a << 6`` (0: unbounded, as Lava).
    twos_complement : wrap u into [-2**23, 2**23 - 1] (else Lava's (-2**23, 2**23]).
    """

    def __init__(
        self,
        *,
        shape: tuple[int, ...],
        current_decays: np.ndarray,
        voltage_decays: np.ndarray,
        vth: int,
        timesteps: int,
        offset: int,
        q_bits: int = 0,
        twos_complement: bool = False,
        name: str | None = None,
    ) -> None:
        shape = tuple(shape)
        samples = current_decays.shape[0]
        per_step = current_decays.ndim == len(shape) + 2
        expected = (samples, timesteps, *shape) if per_step else (samples, *shape)
        if current_decays.shape != expected or voltage_decays.shape != expected:
            raise ValueError(f"decay tables must have shape {expected}")
        if not 1 <= timesteps <= MAX_TIMESTEPS:
            raise ValueError(f"timesteps must be in 1..{MAX_TIMESTEPS}")
        super().__init__(timesteps=timesteps, offset=offset, per_step=per_step, q_bits=q_bits,
                         twos_complement=twos_complement, name=name)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.u = Var(shape=shape, init=0)
        self.v = Var(shape=shape, init=0)
        self.du = Var(shape=shape, init=0)
        self.dv = Var(shape=shape, init=0)
        self.bias_mant = Var(shape=shape, init=0)
        self.bias_exp = Var(shape=shape, init=0)
        self.vth = Var(shape=(1,), init=int(vth))
        self.current_decays = Var(shape=expected, init=current_decays.astype(np.int32))
        self.voltage_decays = Var(shape=expected, init=voltage_decays.astype(np.int32))
        self.spike_words = Var(shape=(samples, raster_words(timesteps), *shape), init=0)
        self.active_steps = Var(shape=(samples,), init=0)


@implements(proc=RandHetLIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyRandHetLIFModelFixed(AbstractPyLifModelFixed):
    """Bit-accurate model: Lava's fixed-point CUBA dynamics plus per-sample decay loading."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=1)
    u: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    v: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    du: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=13)
    dv: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=13)
    bias_mant: np.ndarray = LavaPyType(np.ndarray, np.int16, precision=13)
    bias_exp: np.ndarray = LavaPyType(np.ndarray, np.int16, precision=3)
    vth: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=17)
    current_decays: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=13)
    voltage_decays: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=13)
    spike_words: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=64)
    active_steps: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=64)

    def __init__(self, proc_params: dict) -> None:
        super().__init__(proc_params)
        self.timesteps = int(proc_params["timesteps"])
        self.offset = int(proc_params["offset"])
        self.per_step = bool(proc_params["per_step"])
        self.q_bits = int(proc_params["q_bits"])
        self.twos_complement = bool(proc_params["twos_complement"])
        self.effective_vth = 0

    def scale_threshold(self) -> None:
        self.effective_vth = np.left_shift(np.int64(self.vth[0]), self.vth_shift)
        self.isthrscaled = True

    @staticmethod
    def _wrap(x: np.ndarray, bits: int) -> np.ndarray:
        """Two's-complement wrap of int64 ``x`` to ``bits`` signed bits."""
        half = np.int64(1) << (bits - 1)
        return ((x + half) & ((np.int64(1) << bits) - 1)) - half

    def subthr_dynamics(self, activation_in: np.ndarray) -> None:
        """Lava's fixed-point dynamics, or the chip's overflow rules (``q_bits``,
        ``twos_complement``), in the same order: decay u, add the (wrapped) input, wrap u;
        decay v, add u, saturate v."""
        if not self.q_bits and not self.twos_complement:
            super().subthr_dynamics(activation_in)
            return
        prod = np.int64(self.u) * (self.decay_unity - (np.int64(self.du) + self.ds_offset))
        q0 = np.left_shift(activation_in.astype(np.int64), self.act_shift)
        if self.q_bits:
            q0 = self._wrap(q0, self.q_bits)
        u = np.sign(prod) * np.right_shift(np.abs(prod), self.decay_shift) + q0
        if self.twos_complement:
            u = self._wrap(u, self.uv_bitwidth)
        else:
            u = np.where(u > self.max_uv_val, u - 2 * self.max_uv_val, u)
            u = np.where(u <= -self.max_uv_val, u + 2 * self.max_uv_val, u)
        self.u[:] = u
        prod = np.int64(self.v) * (self.decay_unity - (np.int64(self.dv) + self.dm_offset))
        v = np.sign(prod) * np.right_shift(np.abs(prod), self.decay_shift) + u
        v = v + self.effective_bias
        self.v[:] = np.clip(v, -self.max_uv_val + 1, self.max_uv_val - 1)

    def spiking_activation(self) -> np.ndarray:
        return self.v > self.effective_vth

    def run_spk(self) -> None:
        a_in = self.a_in.recv()
        step = self.time_step - 1 - self.offset
        samples = self.current_decays.shape[0]
        if step < 0 or step >= samples * self.timesteps:
            self.s_out.send(np.zeros(self.s_out.shape, dtype=np.int32))
            return
        sample, k = divmod(step, self.timesteps)
        if k == 0:
            self.u[:] = 0
            self.v[:] = 0
        if k == 0 or self.per_step:
            row = (sample, k) if self.per_step else (sample,)
            # Lava's current decay adds a hidden +1 (ds_offset); the voltage decay does not.
            self.du[:] = self.current_decays[row] - self.ds_offset
            self.dv[:] = self.voltage_decays[row] - self.dm_offset
        if not self.isthrscaled:
            self.scale_threshold()
        self.scale_bias()
        self.subthr_dynamics(activation_in=a_in.astype(np.int32))
        spikes = self.spiking_activation()
        self.active_steps[sample] += int(np.count_nonzero((self.u != 0) | (self.v != 0)))
        self.reset_voltage(spike_vector=spikes)
        word, bit = divmod(k, WORD_BITS)
        self.spike_words[sample, word] |= spikes.astype(np.int64) << bit
        self.s_out.send(spikes.astype(np.int32))
