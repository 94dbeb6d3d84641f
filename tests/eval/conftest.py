import pytest
import torch


@pytest.fixture(autouse=True)
def one_cpu_thread():
    """Tiny models run several times faster on one intra-op thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
