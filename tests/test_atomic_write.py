"""One atomic-write primitive (ccalens.core._files.atomic_write) behind ccalens.io, SufficientStats.save and the
activation store; a failed write leaves neither a partial file nor a temporary one."""

from __future__ import annotations

import numpy as np
import pytest

import ccalens.io
from ccalens.core import _files
from ccalens.core.stats import SufficientStats
from ccalens.extract import files as store_files


def test_io_reexports_the_core_primitive():
    assert ccalens.io.atomic_write is _files.atomic_write


@pytest.mark.parametrize("writer", ["io", "stats", "store"])
def test_every_writer_goes_through_the_core_primitive_and_cleans_up(tmp_path, monkeypatch, writer):
    calls = []
    real = _files.atomic_write

    def spy(path, write, *, fsync=True):
        calls.append(path)

        def failing(f):
            write(f)
            raise OSError("disk full (simulated)")

        return real(path, failing, fsync=fsync)

    monkeypatch.setattr(_files, "atomic_write", spy)
    monkeypatch.setattr(ccalens.io, "atomic_write", spy)
    monkeypatch.setattr("ccalens.core.stats.atomic_write", spy)
    monkeypatch.setattr(store_files, "_atomic_write", spy)
    target = tmp_path / "out.bin"
    with pytest.raises(OSError, match="disk full"):
        if writer == "io":
            ccalens.io.atomic_write_bytes(target, b"abc")
        elif writer == "stats":
            SufficientStats.from_arrays(np.eye(3), np.eye(3)).save(target)
        else:
            store_files.write_npy(target, np.arange(4.0), fsync=False)
    assert len(calls) == 1
    assert list(tmp_path.iterdir()) == []
