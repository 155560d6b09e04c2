"""Rollout videos: replayed after the evaluation, playable, and faithful to the evaluated episodes."""

from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("gym_pusht")
imageio = pytest.importorskip("imageio.v2")

from conftest import make_episodes  # noqa: E402


@pytest.fixture(scope="module")
def pusht_run(tmp_path_factory):
    """A tiny LWD trained on random 5-d PushT-state data: it fails, but it acts, and regenerates every 4 steps."""
    from lwd.data import Episodes
    from lwd.pipeline import train_run

    root = tmp_path_factory.mktemp("video")
    raw = make_episodes(num_episodes=4, length=12, num_tasks=1)
    data = {"obs": raw.data["obs"] * 50 + 256, "action": raw.data["action"] * 100 + 256}
    Episodes(data, raw.episode_ends, attrs={"suite": "pusht/state", "tasks": ["pusht"]}).save(root / "d.zarr")
    settings = ["vae_steps=3", "prior_steps=3", "horizon=4", "condition=state", "latent_dim=4", "policy_hidden=[8]",
                "chunk_size=64", "hyper_hidden=[8]", "encoder_dim=8", "encoder_heads=2", "denoiser_width=8", "denoiser_blocks=1"]
    train_run("lwd", root / "d.zarr", root / "run", overrides=settings, progress=False)
    return root / "run"


def test_eval_video_writes_playable_files_that_replay_the_evaluated_episodes(pusht_run, tmp_path):
    from lwd.pipeline import evaluate_run

    result = evaluate_run(pusht_run, episodes=2, progress=False, video=2, video_dir=tmp_path)
    assert len(result["videos"]) == 2
    for video, episode in zip(result["videos"], result["episodes"]):
        assert video["matches_evaluation"] and (video["seed"], video["steps"]) == (episode["seed"], episode["steps"])
        frames = [f for f in imageio.get_reader(video["video"])]  # (its len() is inf: iterate)
        assert video["video"].endswith(".mp4") and len(frames) == episode["steps"] + 1  # the reset frame and one per step
        assert frames[0].shape[2] == 3 and frames[0].std() > 0
        assert video["generation_steps"][:3] == [0, 4, 8]  # LWD regenerates every H = 4 steps: each one marked
        red = lambda f: (f[2:4, 2:-2, 0] > 150) & (f[2:4, 2:-2, 1] < 100)  # noqa: E731  the red border of a generation step
        marked = [k for k, frame in enumerate(frames) if red(frame).mean() > 0.5]
        assert marked == video["generation_steps"]  # the frame of the observation each generation started from


def test_without_an_encoder_videos_fall_back_to_gif(pusht_run, tmp_path, monkeypatch):
    from lwd.pipeline import evaluate_run

    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # as if imageio[ffmpeg] were not installed
    result = evaluate_run(pusht_run, episodes=1, progress=False, video=1, video_dir=tmp_path)
    path = result["videos"][0]["video"]
    assert path.endswith(".gif")
    frames = [f for f in imageio.get_reader(path)]
    assert len(frames) == result["episodes"][0]["steps"] + 1
    assert np.asarray(frames[0]).ndim == 3
