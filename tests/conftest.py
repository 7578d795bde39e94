"""Shared fixtures: a tiny RandHet network trained once per test session (real training)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import randhet  # noqa: F401  (activates the Lava compatibility fix before anything imports lava)
from randhet.config import load_config

TINY = [
    "model.layers=[\"dense:24\"]",
    "encoding.timesteps=8",
    "train.epochs=4",
    "train.batch_size=32",
    "train.lr=0.01",
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` run only with RANDHET_SLOW=1 (make test stays short)."""
    if os.environ.get("RANDHET_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: set RANDHET_SLOW=1 to run it")
    for item in items:
        if item.get_closest_marker("slow") is not None:
            item.add_marker(skip)


def tiny_config(*extra: str) -> dict:
    return load_config(None, [*TINY, *extra])


@pytest.fixture(scope="session")
def make_tiny_config():
    """A factory: tiny_config(*overrides) -> resolved config of a tiny, fast network."""
    return tiny_config


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained and exported tiny digits network (sigma = 1, direct encoding)."""
    from randhet.export import export_run
    from randhet.train.trainer import train

    out = tmp_path_factory.mktemp("tiny_run")
    train(tiny_config("name=tiny"), out, progress=False)
    export_run(out)
    return out
