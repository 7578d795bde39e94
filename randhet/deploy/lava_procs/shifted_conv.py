"""ShiftedConv: Lava's convolution synapse with the weight exponent applied.

Loihi scales a synapse group's integer sums by ``2**weight_exp``; Lava's CPU ``Conv`` model
accepts ``weight_exp`` but ignores it (``PyConvModelFixed.clamp_precision`` only clamps to
24 bits). randhet's direct encoding needs the right shift of the first synapse, so this model
applies it (arithmetic shift, as Lava's ``Dense`` does) before the 24-bit clamp.
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.conv import utils
from lava.proc.conv.models import AbstractPyConvModel
from lava.proc.conv.process import Conv


class ShiftedConv(Conv):
    """``lava.proc.conv.process.Conv`` whose fixed-point model honours ``weight_exp``."""


@implements(proc=ShiftedConv, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyShiftedConvModelFixed(AbstractPyConvModel):
    """Lava's fixed-point Conv model (same types) plus the weight-exponent shift."""

    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    a_buf: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    weight: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=8)

    def clamp_precision(self, x: np.ndarray) -> np.ndarray:
        exp = int(np.asarray(self.weight_exp).reshape(-1)[0])
        x = np.left_shift(x, exp) if exp >= 0 else np.right_shift(x, -exp)
        return utils.signed_clamp(x, bits=24)
