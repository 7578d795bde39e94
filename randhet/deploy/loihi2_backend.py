"""``--backend loihi2``: real Loihi 2 hardware through Intel's lava-loihi extension.

lava-loihi (``Loihi2HwCfg``) is distributed by Intel to INRC members and is not on PyPI; randhet
never imports it anywhere else. randhet's per-sample decay redraw lives in a Python process
model (``RandHetLIF``) that has no Loihi 2 microcode counterpart yet, so this backend states
exactly what is missing instead of running something else.
"""

from __future__ import annotations

import numpy as np

from randhet.decays import DecayDraw
from randhet.deploy.result import RunResult
from randhet.errors import UserError
from randhet.network import ExportedNetwork


def lava_loihi_installed() -> bool:
    """True when Intel's lava-loihi extension can be imported."""
    from lava.utils.loihi import is_installed  # Lava: only when the backend is asked for

    return bool(is_installed())


def run_loihi2(net: ExportedNetwork, inputs: np.ndarray, draws: list[DecayDraw]) -> RunResult:
    """Refuse with a clear message: no hardware model exists for randhet's processes yet."""
    if not lava_loihi_installed():
        raise UserError(
            "--backend loihi2 needs Intel's lava-loihi extension (Loihi2HwCfg), which is not "
            "installed; use --backend lava (bit-accurate simulator) or --backend emulator"
        )
    raise UserError(
        "--backend loihi2: lava-loihi is installed, but randhet's RandHetLIF process (per-sample "
        "decay redraw) has no Loihi 2 microcode model yet; use --backend lava or emulator"
    )
