"""The quickstart pipeline end to end on MT10, shrunk: 1 demo and 1 test episode per task, tiny LWD."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("metaworld")


def test_quickstart_writes_results_plot_and_reuses_finished_stages(tmp_path, capsys):
    from lwd.quickstart import quickstart

    tiny = ("latent_dim=8", "policy_hidden=[16]", "chunk_size=256", "hyper_hidden=[16]", "encoder_dim=16",
            "encoder_heads=2", "denoiser_width=32", "denoiser_blocks=1", "vae_steps=10", "prior_steps=10", "horizon=8")
    result = quickstart(tmp_path, episodes_per_task=1, eval_episodes=1, n_envs=1, overrides=tiny)
    assert len(result["per_task"]) == 10 and len(result["episodes"]) == 10
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["mean_success"] == result["mean_success"]
    assert set(saved["timings_s"]) == {"demos", "train", "eval"}
    assert (tmp_path / "results.png").stat().st_size > 0
    assert (tmp_path / "mt10-lwd" / "train_loss.png").exists()
    capsys.readouterr()
    again = quickstart(tmp_path, episodes_per_task=1, eval_episodes=1, n_envs=1, overrides=tiny)
    text = capsys.readouterr().out
    assert "reusing existing demonstrations" in text and "reusing trained model" in text
    assert again["episodes"] == result["episodes"], "a rerun on the same folder must give the same episodes"
