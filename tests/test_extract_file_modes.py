"""Every file an extraction creates (shards, manifests, the writer lock) gets mode 0o666 less the process umask."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch

from ccalens.extract import ActivationStore, extract
from ccalens.extract.files import WriterLock


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_store_files_and_lock_follow_the_umask(tmp_path, umask):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
    X = np.random.default_rng(0).standard_normal((10, 4)).astype(np.float32)
    old = os.umask(umask)
    try:
        extract(model, X, ["0"], store=ActivationStore(tmp_path / "store"), model_name="m", shard_rows=4,
                progress=False)
        lock = WriterLock(tmp_path / ".other.lock", "a test layer")
        lock.release()
    finally:
        os.umask(old)
    files = [p for p in (tmp_path).rglob("*") if p.is_file()]
    assert any(p.name.endswith(".lock") for p in files if p.parent != tmp_path)  # the layer lock was created
    modes = {str(p.relative_to(tmp_path)): oct(p.stat().st_mode & 0o777) for p in files}
    assert set(modes.values()) == {oct(0o666 & ~umask)}, modes
