"""randhet's Lava Processes and their models.

Lava imports every module in the folder of a Process to find its models, so this package holds
nothing else.
"""

# Packed spike rasters: steps per word. Lava reads a Var back element by element as a float64
# (exact integers only below 2**53), so a word holds 32 steps, never 64.
WORD_BITS = 32


def raster_words(timesteps: int) -> int:
    """Packed words per neuron and sample for ``timesteps`` steps."""
    return -(-timesteps // WORD_BITS)
