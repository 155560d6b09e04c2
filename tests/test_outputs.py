"""lwd.outputs: clean-up after a failed write leaves nothing behind."""

from __future__ import annotations

import threading
import time

from lwd.outputs import remove_path


def _late_writer(folder, delay: float) -> threading.Thread:
    """A writer whose last chunk lands `delay` s from now, as zarr's in-flight chunk writes do after
    a sibling chunk failed (the race a full-disk `lwd demos --overwrite` lost 5 times in 60)."""
    def land() -> None:
        time.sleep(delay)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "late-chunk").write_bytes(b"x")

    thread = threading.Thread(target=land)
    thread.start()
    return thread


def test_a_settling_removal_outlasts_writes_that_land_after_it_starts(tmp_path):
    folder = tmp_path / ".data.zarr.tmp-0"
    folder.mkdir()
    (folder / "chunk").write_bytes(b"x")
    writer = _late_writer(folder, 0.2)
    remove_path(folder, settle=1.0)
    writer.join()
    assert not folder.exists()


def test_a_plain_removal_is_immediate_and_the_late_write_shows_why_settling_exists(tmp_path):
    folder = tmp_path / ".data.zarr.tmp-1"
    folder.mkdir()
    writer = _late_writer(folder, 0.2)
    remove_path(folder)
    writer.join()
    assert (folder / "late-chunk").exists()
    remove_path(tmp_path / "missing")  # a missing path is fine
