"""Shared fixtures of the agent tests."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def single_torch_thread():
    """Tiny nets run fastest on one thread (and do not fight other processes for cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
