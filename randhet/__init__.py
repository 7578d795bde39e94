"""randhet: RandHet spiking networks from training to Loihi deployment.

The public Python API (:mod:`randhet.api`): :func:`load_config`, :func:`train_run`,
:func:`load_run`, :func:`export_run`, :func:`deploy_network`, :func:`profile_network`,
:func:`attack_run` and :class:`UserError`; they are imported on first use, so ``import randhet``
stays quick.
Importing the package activates the Python 3.11 compatibility fix for lava-nc
(:mod:`randhet._compat`); Lava itself is only imported by :mod:`randhet.deploy`.
"""

from typing import Any

from randhet import _compat

_compat.install()

__version__ = "0.1.0"  # the one version number (pyproject.toml reads it from here)

_API = ("Run", "UserError", "attack_run", "deploy_network", "export_run", "load_config",
        "load_run", "profile_network", "train_run")
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        from randhet import api  # the stages import torch and SLAYER: only when asked for

        return getattr(api, name)
    raise AttributeError(f"module 'randhet' has no attribute {name!r}")
