"""Fixtures shared by the experiment tests."""

import pytest
import torch


@pytest.fixture
def one_thread():
    """Small steps (training, timing loops) on a busy 2-core machine run far faster on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
