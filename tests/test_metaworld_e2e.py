"""End to end on a real Metaworld task through the `lwd` command: demos -> train -> eval -> info."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lwd.cli import main
from lwd.data import Episodes

pytest.importorskip("metaworld")

TINY_LWD = ["--set", "latent_dim=8", "--set", "policy_hidden=[32,32]", "--set", "chunk_size=512", "--set", "hyper_hidden=[32]",
            "--set", "encoder_dim=16", "--set", "encoder_layers=1", "--set", "encoder_heads=2", "--set", "denoiser_width=32",
            "--set", "horizon=8", "--set", "vae_steps=20", "--set", "prior_steps=20", "--set", "condition=state",
            "--train-set", "batch_size=8"]


@pytest.fixture(scope="module")
def reach_demos(tmp_path_factory):
    out = tmp_path_factory.mktemp("demos") / "reach.zarr"
    assert main(["demos", "metaworld/reach-v3", "--episodes", "3", "--out", str(out)]) == 0
    return out


def test_demos_are_seeded_successful_expert_episodes(reach_demos):
    episodes = Episodes.load(reach_demos)
    assert episodes.num_episodes == 3
    assert episodes.attrs["suite"] == "metaworld/reach-v3"
    assert episodes.data["obs"].shape[1] == 39 and episodes.data["action"].shape[1] == 4
    assert np.abs(episodes.data["action"]).max() <= 1.0
    assert (episodes.lengths < 500).all(), "the scripted expert should reach the goal well before the time limit"
    assert len(set(map(tuple, episodes.data["obs"][episodes.episode_starts, -3:]))) > 1, "goals should vary between episodes"


TINY_DP = ["--set", "down_dims=[16,32]", "--set", "diffusion_step_embed_dim=16", "--set", "steps=20",
           "--set", "num_inference_steps=5", "--set", "num_train_timesteps=5", "--train-set", "batch_size=8"]


@pytest.mark.parametrize("method,extra", [("bc", ["--set", "steps=30", "--set", "hidden=[32]"]), ("lwd", TINY_LWD), ("dp", TINY_DP)])
def test_eval_results_do_not_depend_on_parallel_envs(reach_demos, tmp_path, method, extra):
    run = tmp_path / "run"
    assert main(["train", method, "--data", str(reach_demos), "--out", str(run), *extra]) == 0
    results = []
    for n_envs in (1, 3):
        out = tmp_path / f"r{n_envs}.json"
        assert main(["eval", str(run), "--episodes", "4", "--n-envs", str(n_envs), "--out", str(out)]) == 0
        results.append(json.loads(out.read_text()))
    assert results[0]["episodes"] == results[1]["episodes"]
    assert len(results[0]["episodes"]) == 4, "every requested episode is counted"
    assert results[0]["cost"]["flops_per_step"] > 0
    assert (tmp_path / "r1.png").exists()


def test_training_into_a_finished_run_is_refused(reach_demos, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "bc", "--data", str(reach_demos), "--out", str(run), "--set", "steps=5"]
    assert main(args) == 0
    assert main(args) == 2
    assert "already holds a trained model" in capsys.readouterr().err


def test_unknown_environment_is_a_clear_error(capsys, tmp_path):
    assert main(["demos", "metaworld/reach-v9", "--episodes", "1", "--out", str(tmp_path / "x.zarr")]) == 2
    assert "unknown Metaworld task" in capsys.readouterr().err
    assert main(["demos", "atari/pong", "--episodes", "1", "--out", str(tmp_path / "x.zarr")]) == 2
    assert "unknown environment" in capsys.readouterr().err


def test_training_on_a_malformed_dataset_is_a_clear_error(tmp_path, capsys):
    bad = Episodes.from_list([{"obs": np.zeros((10, 39), np.float32), "action": np.zeros((10, 4), np.float32)}])
    bad.data["action"][3, 1] = np.nan  # corrupt after validation, then save bypassing nothing: save validates too
    with pytest.raises(Exception):
        bad.save(tmp_path / "bad.zarr")
    assert main(["train", "lwd", "--data", str(tmp_path / "missing.zarr"), "--out", str(tmp_path / "r")]) == 2
    assert "missing.zarr" in capsys.readouterr().err


def test_info_prints_params_and_flops(reach_demos, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "lwd", "--data", str(reach_demos), "--out", str(run), *TINY_LWD]) == 0
    capsys.readouterr()
    assert main(["info", str(run), "--action-horizon", "16"]) == 0
    text = capsys.readouterr().out
    assert "flops_per_step" in text and "params_per_step" in text and "generation_every" in text
    assert "latency_us_median" in text and "latency_us_p95" in text


def test_bench_grid_runs_every_method_horizon_and_perturbation(reach_demos, tmp_path):
    out = tmp_path / "bench"
    tiny = [f"lwd:{TINY_LWD[i + 1]}" for i in range(0, len(TINY_LWD) - 2, 2) if TINY_LWD[i] == "--set"]
    tiny += ["dp:down_dims=[16,32]", "dp:diffusion_step_embed_dim=16", "dp:steps=20", "dp:num_inference_steps=5",
             "dp:num_train_timesteps=5", "bc:steps=20", "bc:hidden=[16]"]
    args = ["bench", "metaworld/reach-v3", "--data", str(reach_demos), "--out", str(out), "--methods", "lwd,dp,dp-ddim,bc",
            "--horizons", "4,16", "--perturb", "none,action-noise:0.3", "--episodes", "1", "--ddim-steps", "3"]
    for item in tiny:
        args += ["--set", item]
    assert main(args) == 0
    grid = json.loads((out / "grid.json").read_text())
    keys = {(c["method"], c["horizon"], c["perturbation"]) for c in grid["cells"]}
    assert len(grid["cells"]) == len(keys) == 3 * 2 * 2 + 2
    # DP with H=16 needs a prediction horizon of at least To-1+16 = 17, rounded up to a multiple of 2
    assert any("dp-T18" in c["run_dir"] for c in grid["cells"] if c["horizon"] == 16)
    ddim = [c for c in grid["cells"] if c["method"] == "dp-ddim"]
    ddpm = [c for c in grid["cells"] if c["method"] == "dp"]
    assert ddim[0]["cost"]["flops_generation"] < ddpm[0]["cost"]["flops_generation"] or ddim[0]["cost"]["inference_steps"] == 3
    assert (out / "success_vs_horizon.png").exists() and (out / "flops_per_step.png").exists()
    assert "| lwd | 4 |" in (out / "grid.md").read_text()
    assert all(c["cost"]["latency_us_median"] > 0 for c in grid["cells"])


def test_periodic_evaluation_during_training_is_logged(reach_demos, tmp_path):
    run = tmp_path / "run"
    assert main(["train", "bc", "--data", str(reach_demos), "--out", str(run), "--set", "steps=20", "--set", "hidden=[16]",
                 "--train-set", "checkpoint_every=5", "--eval-every", "10", "--eval-episodes", "1"]) == 0
    log = json.loads((run / "train_log.json").read_text())
    assert [e["step"] for e in log["evals"]] == [10]
    assert 0.0 <= log["evals"][0]["mean_success"] <= 1.0


def test_bench_reuses_a_cached_run_only_with_identical_settings(reach_demos, tmp_path):
    from lwd.experiments.bench import check_reuse

    run = tmp_path / "run"
    assert main(["train", "bc", "--data", str(reach_demos), "--out", str(run), "--set", "steps=5", "--seed", "3"]) == 0
    check_reuse(run, "bc", "default", ["steps=5"], seed=3)
    with pytest.raises(ValueError, match="other settings"):
        check_reuse(run, "bc", "default", ["steps=6"], seed=3)
    with pytest.raises(ValueError, match="other settings"):
        check_reuse(run, "bc", "default", ["steps=5"], seed=4)


def test_info_counts_an_untrained_preset(capsys):
    assert main(["info", "dp:paper", "--preset-only", "--dims", "20,2", "--latency-steps", "0"]) == 0
    text = capsys.readouterr().out
    assert "65,783,298" in text  # the reference low-dim U-Net for PushT (obs 20, action 2)
    assert "flops_denoiser_call" in text and "flops_per_step" in text
