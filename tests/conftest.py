import os
import tempfile

import pytest
import torch

# PyG and inductor write generated files; keep them out of the user's folders.
_scratch = tempfile.mkdtemp(prefix="freecg-tests-")
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", os.path.join(_scratch, "inductor"))


@pytest.fixture
def float64():
    """Run a test with float64 as the default dtype (symmetry checks), then restore."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


@pytest.fixture
def generator():
    return torch.Generator().manual_seed(0)
