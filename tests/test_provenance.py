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
