"""Every figure randhet writes (PNG, no display): pure functions of the results they show.

Stages call them beside their JSON; matplotlib is imported on the first figure
(:func:`randhet.plots.figure.pyplot`).
"""

from randhet.plots.analysis import plot_landscape, plot_rasters
from randhet.plots.robustness import plot_compare, plot_flex_compare, plot_robustness
from randhet.plots.stages import CoreTimes, LayerBars, plot_deploy, plot_profile, plot_training

__all__ = ["CoreTimes", "LayerBars", "plot_compare", "plot_deploy", "plot_flex_compare",
           "plot_landscape", "plot_profile", "plot_rasters", "plot_robustness", "plot_training"]
