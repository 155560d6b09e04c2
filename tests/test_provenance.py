"""Results cite the commit a process started on, and say so when the repository moved under it."""

from __future__ import annotations

from lwd import provenance as prov


def test_provenance_cites_the_commit_at_start_and_flags_a_later_one(monkeypatch):
    monkeypatch.setattr(prov, "_COMMIT_AT_START", "aaaa")
    monkeypatch.setattr(prov, "git_commit", lambda: "bbbb")
    record = prov.provenance(["lwd", "eval"])
    assert record["git_commit"] == "aaaa" and record["git_commit_at_write"] == "bbbb"
    assert "changed" in record["note"] and record["command"] == "lwd eval"


def test_provenance_has_no_note_when_the_commit_did_not_move(monkeypatch):
    monkeypatch.setattr(prov, "git_commit", lambda: prov._COMMIT_AT_START)
    record = prov.provenance(["lwd", "eval"])
    assert "git_commit_at_write" not in record and "note" not in record
    assert {"date", "machine"} <= record.keys()


def test_the_dataset_hash_leaves_out_how_long_the_collection_took_and_still_knows_old_runs_hashes(tmp_path):
    from lwd.provenance import data_matches, episodes_hash

    from conftest import make_episodes

    first, again = make_episodes(), make_episodes()
    first.attrs["seconds"], again.attrs["seconds"] = 12.52, 13.07  # `lwd demos` twice, same seeds
    assert episodes_hash(first) == episodes_hash(again)
    again.attrs["dart_noise"] = 0.1
    assert episodes_hash(first) != episodes_hash(again)
    first.save(tmp_path / "d.zarr")
    recorded_before = episodes_hash(first, legacy=True)  # what a run trained before the change recorded
    assert recorded_before != episodes_hash(first)
    assert data_matches(tmp_path / "d.zarr", recorded_before)[0] and data_matches(tmp_path / "d.zarr", episodes_hash(first))[0]
    assert not data_matches(tmp_path / "d.zarr", episodes_hash(again))[0]
