import os
import sys
from pathlib import Path

# Hub access must never be attempted in tests; huggingface_hub reads this at import time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
sys.path.insert(0, str(Path(__file__).parent))

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _private_prescan_cache(tmp_path_factory, monkeypatch):
    """Each test session keeps the bad-file pre-scan cache out of the user's ~/.cache."""
    monkeypatch.setenv("UNIREPLKNET_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
