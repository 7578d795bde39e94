"""Data sets as [0, 1] float arrays with train/validation/test splits."""

from randhet.data.datasets import Splits, load_dataset

__all__ = ["Splits", "load_dataset"]
