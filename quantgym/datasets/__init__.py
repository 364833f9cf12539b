"""Trajectory datasets recorded from the env, splits, exports and bundled sample data."""

from quantgym.datasets.sample_data import SAMPLES, load_sample

__all__ = ["SAMPLES", "load_sample"]
