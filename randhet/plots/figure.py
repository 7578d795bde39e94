"""matplotlib without a display, imported on first use (a stage that only computes never pays
for it)."""

from __future__ import annotations

from typing import Any


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend."""
    import matplotlib  # a plotting dependency: imported when a figure is drawn, not before

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # after the backend is chosen

    return plt
