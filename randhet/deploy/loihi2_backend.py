"""``--backend loihi2``: real Loihi 2 hardware through Intel's lava-loihi extension.

lava-loihi (``Loihi2HwCfg``) is distributed by Intel to INRC members and is not on PyPI; randhet
never imports it anywhere else. randhet's per-sample decay redraw for per-neuron draws lives in a
Python process model (``RandHetLIF``) with no Loihi 2 microcode counterpart, so such a network
is refused with what is missing. A profile-grouped network (``granularity = "profile"``) needs
no custom neuron: it runs as stock ``LIF``/``Dense`` processes with decays written from the host
(:mod:`randhet.deploy.lava_stock`), the form the Loihi 2 compiler takes. randhet has run that
form on Lava's CPU simulator only (``--backend lava-stock``), never on a chip.
"""

from __future__ import annotations

import numpy as np

from randhet.decays import DecayDraw
from randhet.deploy.lava_stock import run_lava_stock
from randhet.deploy.result import RunResult
from randhet.errors import UserError
from randhet.network import ExportedNetwork


def lava_loihi_installed() -> bool:
    """True when Intel's lava-loihi extension can be imported."""
    from lava.utils.loihi import is_installed  # Lava: only when the backend is asked for

    return bool(is_installed())


def run_loihi2(net: ExportedNetwork, inputs: np.ndarray,
               draws: list[DecayDraw]) -> tuple[RunResult, dict[str, int]]:
    """Run a profile-grouped network on a Loihi 2 as stock processes; refuse clearly where
    lava-loihi is missing or the network needs randhet's custom neuron."""
    if not lava_loihi_installed():
        raise UserError(
            "--backend loihi2 needs Intel's lava-loihi extension (Loihi2HwCfg), which is not "
            "installed; use --backend lava (bit-accurate simulator) or --backend emulator"
        )
    if net.spec.neuron.granularity != "profile" and net.spec.neuron.sigma > 0:
        raise UserError(
            "--backend loihi2: per-neuron decay redraws need randhet's RandHetLIF process, which "
            "has no Loihi 2 microcode model; train with neuron.granularity = 'profile' (stock "
            "LIF processes, decays written from the host) or use --backend lava or emulator"
        )
    return run_lava_stock(net, inputs, draws, hardware=True)
