"""jaxgan.files.atomic_path: the target holds the old content or the new, never a part."""

import os

import pytest

from jaxgan.files import atomic_path


def test_the_new_content_replaces_the_old_only_when_the_block_succeeds(tmp_path):
    target = tmp_path / "report.json"
    target.write_text("old")
    with atomic_path(target) as tmp:
        assert tmp == str(tmp_path / "report.tmp.json")  # the extension stays last
        with open(tmp, "w") as f:
            f.write("new, half")
        assert target.read_text() == "old"  # nothing visible until the block ends
    assert target.read_text() == "new, half"

    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            with open(tmp, "w") as f:
                f.write("never")
            raise RuntimeError("killed midway")
    assert target.read_text() == "new, half"
    assert os.listdir(tmp_path) == ["report.json"]  # the temporary file is gone
