"""randhet: RandHet spiking networks from training to Loihi 2 deployment.

Importing the package activates the Python 3.11 compatibility fix for lava-nc
(:mod:`randhet._compat`); Lava itself is only imported by :mod:`randhet.deploy`.
"""

from randhet import _compat

_compat.install()

__version__ = "0.1.0"
