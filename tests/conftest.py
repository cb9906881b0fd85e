"""Shared test fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
# The CoNLL-2003 files are never copied into the repo: they sit beside it.
CONLL_DIR = Path(os.environ.get("CS224N_CONLL_DIR", ROOT.parent / "shared" / "data" / "conll2003"))


@pytest.fixture
def conll_dir() -> Path:
    if not (CONLL_DIR / "eng.train").is_file():
        pytest.skip(f"CoNLL-2003 not found at {CONLL_DIR} (set CS224N_CONLL_DIR)")
    return CONLL_DIR


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
