"""Behaviour reconstruction in the real simulator, and latent maps."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lwd.cli import main

pytest.importorskip("metaworld")

TINY = ["latent_dim=8", "policy_hidden=[32]", "chunk_size=256", "hyper_hidden=[32]", "encoder_dim=16", "encoder_heads=2",
        "denoiser_width=32", "denoiser_blocks=1", "horizon=16", "condition=state", "vae_steps=150", "prior_steps=20",
        "prior_batch_size=32"]


@pytest.fixture(scope="module")
def reach(tmp_path_factory):
    root = tmp_path_factory.mktemp("reach")
    assert main(["demos", "metaworld/reach-v3", "--episodes", "4", "--out", str(root / "train.zarr")]) == 0
    assert main(["demos", "metaworld/reach-v3", "--episodes", "3", "--seed-start", "5000", "--out", str(root / "held.zarr")]) == 0
    args = ["train", "lwd", "--data", str(root / "train.zarr"), "--out", str(root / "lwd")]
    for item in TINY:
        args += ["--set", item]
    assert main(args) == 0
    return root


def test_reconstruction_replays_held_out_demos_from_their_own_starts(reach, capsys):
    out = reach / "reconstruct.json"
    assert main(["reconstruct", str(reach / "lwd"), "--data", str(reach / "held.zarr"), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["starts_matched"]  # the env reset with each demo's seed reproduces its first observation
    seeds = [e["seed"] for e in result["episodes"]]
    assert len(seeds) == 3 and seeds == sorted(seeds) and min(seeds) >= 5000  # the held-out demos' own seeds
    for episode in result["episodes"]:
        assert episode["segments"] == -(-episode["demo_steps"] // 16)
        assert np.isfinite(episode["state_rmse"]) and episode["state_rmse"] >= 0
    assert set(result["per_task"]) == {"reach-v3"} and 0 <= result["mean_success"] <= 1
    assert "state RMS error" in capsys.readouterr().out


def test_latent_map_is_written(reach, capsys):
    png = reach / "latents.png"
    assert main(["latents", str(reach / "lwd"), "--data", str(reach / "train.zarr"), "--out", str(png), "--stride", "8"]) == 0
    assert png.stat().st_size > 5000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "coloured by segment's direction of motion" in capsys.readouterr().out


def test_reconstruction_needs_seeded_demos_and_an_encoder(reach, tmp_path, capsys):
    from lwd.data import Episodes

    episodes = Episodes.load(reach / "held.zarr")
    episodes.attrs.pop("seeds")
    episodes.save(tmp_path / "unseeded.zarr")
    assert main(["reconstruct", str(reach / "lwd"), "--data", str(tmp_path / "unseeded.zarr")]) == 2
    assert "does not record each episode's seed" in capsys.readouterr().err
    assert main(["train", "bc", "--data", str(reach / "train.zarr"), "--out", str(tmp_path / "bc"), "--set", "steps=5"]) == 0
    assert main(["reconstruct", str(tmp_path / "bc"), "--data", str(reach / "held.zarr")]) == 2
    assert "bc does not generate policy weights; export, latents and reconstruct need lcmlp, lwd or warpd" in capsys.readouterr().err


def test_segment_drift_replays_each_segment_start_and_runs_its_policy_for_h_steps(reach):
    from lwd.analysis.reconstruct import segment_drift

    for latents in ("posterior", "prior"):
        drift = segment_drift(reach / "lwd", reach / "held.zarr", episodes=2, latents=latents, progress=False)
        assert drift["segments_not_replayable"] == 0  # replaying the demo's actions reaches each recorded segment start
        assert drift["segments"] > 2 and len(drift["drift_per_step"]) == 16
        assert all(np.isfinite(v) and v >= 0 for v in drift["drift_per_step"])
    with pytest.raises(ValueError, match="posterior' or 'prior"):
        segment_drift(reach / "lwd", reach / "held.zarr", latents="mean")


def test_latent_diagnostics_benchmark_writes_json_and_plot(reach, tmp_path, monkeypatch):
    import runpy
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "latent_diagnostics.py"
    out = tmp_path / "diag.json"
    monkeypatch.setattr(sys, "argv", [str(script), str(reach / "lwd"), "--data", str(reach / "held.zarr"), "--episodes", "1",
                                      "--out", str(out)])
    runpy.run_path(str(script), run_name="__main__")
    record = json.loads(out.read_text())
    assert len(record["posterior"]["kl_per_dim"]) == 8 and 0 <= record["posterior"]["active_units"] <= 8
    assert set(record["drift"]) == {"posterior", "prior"}
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_label_separability_is_one_on_clusters_and_chance_on_noise():
    from lwd.analysis.latents import label_separability

    rng = np.random.default_rng(0)
    labels = np.repeat(["left", "right"], 200)
    groups = np.arange(400) // 4  # episodes of 4 segments, one label each
    clustered = rng.normal(size=(400, 6)) * 0.1 + (labels == "right")[:, None] * 3.0
    result = label_separability(clustered, labels, groups)
    assert result["knn_accuracy"] == 1.0 and result["recall"] == {"left": 1.0, "right": 1.0} and result["chance"] == 0.5
    noise = label_separability(rng.normal(size=(400, 6)), labels, groups)
    assert abs(noise["knn_accuracy"] - 0.5) < 0.1 and noise["balanced_chance"] == 0.5
    # neighbours never come from the point's own episode: tight per-episode clumps with labels alternating
    # by episode would look perfectly separable if they could vote for themselves
    clumps = np.repeat(rng.normal(size=(100, 6)) * 5, 4, axis=0) + rng.normal(size=(400, 6)) * 0.01
    alternating = np.where(groups % 2 == 0, "left", "right")
    assert label_separability(clumps, alternating, groups)["knn_accuracy"] < 0.7
    assert label_separability(clumps, alternating, np.arange(400))["knn_accuracy"] == 1.0  # (as if each point its own episode)


def test_latent_map_of_styled_demos_is_coloured_by_style_and_says_how_far_the_latent_tells_them_apart(reach, tmp_path, capsys):
    styled = tmp_path / "styled.zarr"
    assert main(["demos", "metaworld/reach-v3", "--episodes", "6", "--styles", "all", "--out", str(styled)]) == 0
    capsys.readouterr()
    out = tmp_path / "map.json"
    assert main(["latents", str(reach / "lwd"), "--data", str(styled), "--out", str(tmp_path / "map.png"), "--json", str(out)]) == 0
    assert "coloured by style" in capsys.readouterr().out
    info = json.loads(out.read_text())
    sep = info["separability"]
    assert info["coloured_by"] == "style" and sep["points"] == info["points"] and 0 <= sep["knn_accuracy"] <= 1
    assert set(sep["recall"]) <= {"scripted", "lift-first", "slow"} and sep["balanced_chance"] == 1 / len(sep["recall"])
