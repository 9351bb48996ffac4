"""core.files: the temporary-file test knows the names atomic_write_text really gives its temporaries."""

import tempfile
from pathlib import Path

from csr_bench.core.files import atomic_write_json, is_atomic_write_temporary


def test_a_killed_atomic_write_leaves_what_is_atomic_write_temporary_recognizes(tmp_path, monkeypatch):
    made = []
    real_mkstemp = tempfile.mkstemp

    def recording_mkstemp(*args, **kwargs):
        fd, name = real_mkstemp(*args, **kwargs)
        made.append(name)
        return fd, name

    monkeypatch.setattr(tempfile, "mkstemp", recording_mkstemp)
    atomic_write_json(tmp_path / "lineage.json", {"a": 1})
    assert len(made) == 1
    leftover = tmp_path / Path(made[0]).name
    leftover.write_text("{")  # what a kill between the write and the rename leaves
    assert is_atomic_write_temporary(leftover, of="lineage.json")
    assert is_atomic_write_temporary(leftover)
    assert not is_atomic_write_temporary(leftover, of="manifest.json")
    assert not is_atomic_write_temporary(tmp_path / "lineage.json")
    assert not is_atomic_write_temporary(tmp_path / "lineage.json", of="lineage.json")
    folder = tmp_path / ".lineage.json.abc.tmp"
    folder.mkdir()
    assert not is_atomic_write_temporary(folder, of="lineage.json")  # only files are leftovers of ours
