"""LWD and BC on camera frames with a frozen encoder (lwd.methods.frozen_vision): the encoder is trained
(or loaded), then frozen; both train on step vectors [obs, features], evaluate on pusht/image, and cost
the encoder at every step. State-only configs and study keys stay as they were."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from test_dp_image import tiny_image_demos

from lwd.flops import count_flops
from lwd.methods.vision import ImageEncoder

IMAGE = ["encoder_steps=3", "encoder_batch_size=4", "image_width=16", "image_keypoints=4", "camera_features=8",
         "crop_shape=[88,88]"]
TINY_LWD = ["horizon=4", "vae_steps=3", "prior_steps=3", "condition=state", "latent_dim=4", "policy_hidden=[16]",
            "hyper_hidden=[16]", "denoiser_width=16", "denoiser_blocks=1", "encoder_dim=16", "chunk_size=64",
            "inference_steps=2", "policy_obs_steps=2", *IMAGE]
TINY_BC = ["steps=3", "hidden=[16]", *IMAGE]
FEATURES = 8


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Tiny pusht/image demos, and LWD and BC trained on them with the same encoder settings and seed."""
    from lwd.pipeline import train_run

    root = tmp_path_factory.mktemp("image-runs")
    data = tiny_image_demos(root)
    train_run("lwd", data, root / "lwd", overrides=TINY_LWD, train_overrides=["batch_size=4"], progress=False)
    train_run("bc", data, root / "bc", overrides=TINY_BC, train_overrides=["batch_size=4"], progress=False)
    return root, data


def short_pusht_image(steps: int = 6):
    from lwd.envs.pusht import PushTEnv
    from lwd.suites import make_suite

    suite = make_suite("pusht/image")
    return dataclasses.replace(suite, make_task_env=lambda task, **kw: PushTEnv("image", **{"max_episode_steps": steps, **kw}))


def test_lwd_on_frames_trains_on_frozen_features_reloads_and_evaluates_end_to_end(runs):
    from lwd.checkpoint import load_model
    from lwd.evaluation.evaluate import evaluate

    root, _ = runs
    saved = json.loads((root / "lwd" / "config.json").read_text())
    assert saved["data"]["images"] == [["image", [96, 96, 3]]]
    log = json.loads((root / "lwd" / "train_log.json").read_text())
    assert list(log["seconds"]) == ["encoder", "vae", "prior"]
    model = load_model(root / "lwd")
    # the step vector [agent x, y, 8 features] everywhere the low-dim obs is on state data
    assert model.step_dim == 2 + FEATURES and model.target.obs_dim == 2 * (2 + FEATURES)
    assert not any(p.requires_grad for p in model.vision.parameters())
    low, high = model.vision.feature_min, model.vision.feature_max
    assert bool((high > low).all())  # the features' normaliser was fitted on the training frames

    cost = model.cost()
    one_frame = ImageEncoder((96, 96, 3), (88, 88), 16, 4, FEATURES).eval()
    encoder_flops = count_flops(lambda: one_frame(torch.zeros(1, 96, 96, 3, dtype=torch.uint8)))
    assert cost.details["flops_image_encoders"] == encoder_flops > 100 * cost.details["flops_generated_mlp"]
    assert cost.flops_policy_step == encoder_flops + cost.details["flops_generated_mlp"]
    assert cost.params_per_step == cost.details["params_image_encoders"] + model.target.num_params

    short = short_pusht_image()
    result = evaluate(model, short, episodes_per_task=2, n_envs=2, progress=False)
    assert [e["steps"] for e in result["episodes"]] == [6, 6]
    assert result["cost"]["generations"] == 4  # H = 4: steps 0 and 4 of each episode
    again = evaluate(load_model(root / "lwd"), short, episodes_per_task=2, n_envs=1, progress=False)
    assert [e["total_reward"] for e in again["episodes"]] == [e["total_reward"] for e in result["episodes"]]

    # the frames reach the policy: the same agent position with another frame gives another action
    policy = model.make_policy()
    obs, _ = short.make_env("pusht").reset(seed=3)
    policy.reset(3)
    a = policy.act(obs)
    policy.reset(3)
    b = policy.act({**obs, "image": 255 - obs["image"]})
    assert not np.allclose(a, b)
    with pytest.raises(ValueError, match=r"reads camera frames \['image'\]"):
        policy.act(obs["obs"])


def test_the_encoder_does_not_change_once_its_stage_has_ended(tmp_path):
    from lwd.config import RunConfig
    from lwd.data import Episodes, MinMaxNormalizer
    from lwd.methods.base import build_method
    from lwd.pipeline import build_configs, data_info
    from lwd.training.train import train

    episodes = Episodes.load(tiny_image_demos(tmp_path))
    cfg, train_cfg = build_configs("lwd", overrides=TINY_LWD, train_overrides=["batch_size=4"])
    info = data_info(episodes, "tiny", images=True)
    model = build_method("lwd", cfg, info, MinMaxNormalizer.fit(episodes.data), seed=0)
    seen: dict[str, list[dict[str, torch.Tensor]]] = {}

    def snapshot(method, stage, step):
        seen.setdefault(stage, []).append({k: v.clone() for k, v in method.vision.encoders.state_dict().items()})
        return {}

    train(model, episodes, train_cfg, RunConfig("lwd", cfg, train_cfg, info), tmp_path / "run", progress=False,
          eval_hook=snapshot, eval_every=1)
    final = model.vision.encoders.state_dict()
    assert set(seen) == {"encoder", "vae", "prior"}
    for stage in ("vae", "prior"):  # bit for bit the encoder its own stage left
        assert all(torch.equal(state[k], final[k]) for state in seen[stage] for k in final)
    assert not all(torch.equal(seen["encoder"][0][k], final[k]) for k in final)  # which did train it


def test_lwd_and_bc_freeze_the_same_encoder_from_the_same_settings_and_seed(runs):
    root, _ = runs
    lwd, bc = load_file(str(root / "lwd" / "model.safetensors")), load_file(str(root / "bc" / "model.safetensors"))
    names = sorted(k for k in lwd if k.startswith("vision.encoders."))
    assert names and names == sorted(k for k in bc if k.startswith("vision.encoders."))
    assert all(torch.equal(lwd[k], bc[k]) for k in names)
    assert torch.equal(lwd["vision.feature_max"], bc["vision.feature_max"])  # so are the features they train on


def test_the_pusht_image_presets_of_lwd_and_bc_train_the_same_encoder():
    from lwd.methods.frozen_vision import IMAGE_SETTINGS
    from lwd.pipeline import build_configs

    (lwd, lwd_train), (bc, bc_train) = build_configs("lwd", "pusht-image"), build_configs("bc", "pusht-image")
    same = (*IMAGE_SETTINGS, "encoder_from", "encoder_steps", "encoder_batch_size", "encoder_lr")
    assert {n: getattr(lwd, n) for n in same} == {n: getattr(bc, n) for n in same}
    # the encoder stage's optimiser and averaging come from these shared settings
    shared = ("seed", "betas", "weight_decay", "warmup_steps", "ema_power", "ema_max_decay", "val_fraction")
    assert {n: getattr(lwd_train, n) for n in shared} == {n: getattr(bc_train, n) for n in shared}
    assert lwd.policy_obs_steps == bc.obs_steps == 2 and lwd.image_width == 16


def test_bc_on_features_reloads_evaluates_and_costs_the_encoder(runs):
    from lwd.checkpoint import load_model
    from lwd.evaluation.evaluate import evaluate

    root, _ = runs
    model = load_model(root / "bc")
    cost = model.cost()
    assert cost.flops_policy_step == cost.details["flops_image_encoders"] + cost.details["flops_mlp"]
    assert model.net[0].in_features == 2 + FEATURES
    result = evaluate(model, short_pusht_image(4), episodes_per_task=1, progress=False)
    assert result["episodes"][0]["steps"] == 4 and result["cost"]["flops_image_encoders"] > 0


def test_encoder_from_weights_or_a_run_is_used_unchanged_and_a_mismatch_says_what_to_set(runs, tmp_path):
    from lwd.checkpoint import load_model
    from lwd.pipeline import train_run

    root, data = runs
    torch.manual_seed(5)
    own = ImageEncoder((96, 96, 3), (88, 88), 16, 4, FEATURES)
    save_file({f"image.{k}": v.contiguous() for k, v in own.state_dict().items()}, tmp_path / "mine.safetensors")
    no_stage = [s for s in TINY_LWD if not s.startswith("encoder_")]
    train_run("lwd", data, tmp_path / "lwd", overrides=[*no_stage, f"encoder_from={tmp_path / 'mine.safetensors'}"],
              train_overrides=["batch_size=4"], progress=False)
    model = load_model(tmp_path / "lwd")
    assert list(json.loads((tmp_path / "lwd" / "train_log.json").read_text())["seconds"]) == ["vae", "prior"]
    assert all(torch.equal(v, own.state_dict()[k]) for k, v in model.vision.encoders["image"].state_dict().items())

    # another run's encoder (here BC's): the same tensors
    train_run("bc", data, tmp_path / "bc", overrides=["steps=2", "hidden=[16]", *IMAGE[2:], f"encoder_from={root / 'lwd'}"],
              train_overrides=["batch_size=4"], progress=False)
    lent = load_model(root / "lwd").vision.encoders.state_dict()
    assert all(torch.equal(v, lent[k]) for k, v in load_model(tmp_path / "bc").vision.encoders.state_dict().items())

    wider = [*no_stage, "image_width=32", f"encoder_from={tmp_path / 'mine.safetensors'}"]
    with pytest.raises(ValueError, match=r"add --set image_width=16$"):
        train_run("lwd", data, tmp_path / "x", overrides=wider, progress=False)
    with pytest.raises(ValueError, match=r"add --set camera_features=8$"):
        train_run("lwd", data, tmp_path / "y", overrides=[*no_stage, "camera_features=4", f"encoder_from={root / 'lwd'}"],
                  progress=False)
    with pytest.raises(ValueError, match=r"add --set crop_shape=\[88,88\] image_pool=1$"):  # pool: from the config
        train_run("lwd", data, tmp_path / "p", overrides=[*no_stage, "image_pool=2", "crop_shape=[40,40]",
                                                          f"encoder_from={root / 'lwd'}"], progress=False)
    with pytest.raises(ValueError, match="neither a run directory nor a .safetensors file"):
        train_run("lwd", data, tmp_path / "z", overrides=[*no_stage, f"encoder_from={tmp_path / 'nothing'}"], progress=False)


def test_state_only_lwd_and_bc_keep_their_configs_weights_and_study_keys():
    from lwd.config import DataInfo, key_dict
    from lwd.data import MinMaxNormalizer
    from lwd.experiments.study import StudySpec, missing_cells, plan_study
    from lwd.methods.base import build_method
    from lwd.pipeline import build_configs

    image_fields = {"encoder_from", "encoder_steps", "encoder_batch_size", "encoder_lr", "crop_shape", "image_width",
                    "image_keypoints", "camera_features"}
    for method, preset in (("lwd", "pusht"), ("bc", "default")):
        assert not image_fields & set(key_dict(build_configs(method, preset)[0]))
    normalizer = MinMaxNormalizer({"obs": -np.ones(5), "action": -np.ones(2)}, {"obs": np.ones(5), "action": np.ones(2)})
    model = build_method("lwd", build_configs("lwd", "pusht")[0], DataInfo(5, 2), normalizer, seed=0)
    assert model.vision is None and not any(k.startswith("vision.") for k in model.state_dict())
    # committed results of lwd, bc and dp cells are still found under their keys
    root = Path(__file__).resolve().parents[1]
    spec = StudySpec.load(root / "benchmarks/studies/robomimic-lift.toml")
    cells = plan_study(spec)
    assert {c.method for c in cells} == {"lwd", "bc", "dp"} and missing_cells(spec, cells, root) == []


def test_eval_video_of_an_image_run_shows_the_envs_render_and_replays_the_episode(runs, tmp_path):
    imageio = pytest.importorskip("imageio.v2")
    from lwd.checkpoint import load_model
    from lwd.evaluation.evaluate import evaluate
    from lwd.evaluation.video import record_videos

    root, _ = runs
    model, short = load_model(root / "lwd"), short_pusht_image()
    result = evaluate(model, short, episodes_per_task=1, progress=False)
    videos = record_videos(model, short, result, 1, model.runtime_options(), None, tmp_path)
    assert videos[0]["matches_evaluation"] and videos[0]["generation_steps"] == [0, 4]
    frames = [f for f in imageio.get_reader(videos[0]["video"])]  # (its len() is inf: iterate)
    assert len(frames) == 7 and frames[0].shape[1] > 96  # the env's render, not the 96 px frame the policy reads


def test_lwd_info_of_an_image_run_costs_the_encoder_and_times_steps_with_frames(runs):
    from lwd.pipeline import preset_info, run_info

    root, _ = runs
    info = run_info(root / "lwd", latency_steps=3)
    assert info["flops_image_encoders"] > 0 and info["latency_steps"] == 3
    assert info["flops_policy_step"] == info["flops_image_encoders"] + info["flops_generated_mlp"]
    preset = preset_info("lwd", "pusht-image", 2, 2, env="pusht/image")
    encoder = ImageEncoder((96, 96, 3), (42, 42), 16, 32, 64, pool=2).eval()  # the preset's: frames pooled 2x
    assert preset["flops_image_encoders"] == count_flops(lambda: encoder(torch.zeros(1, 96, 96, 3, dtype=torch.uint8)))
    assert preset["params_image_encoders"] == sum(p.numel() for p in encoder.parameters())
    # what pooling is for: the issue's >= 10x fewer FLOPs per control step than DP image-cpu at H = 32
    lwd32 = preset_info("lwd", "pusht-image", 2, 2, env="pusht/image", action_horizon=32)["flops_per_step"]
    dp32 = preset_info("dp", "image-cpu", 2, 2, env="pusht/image", overrides=["horizon=36"], action_horizon=32)["flops_per_step"]
    full32 = preset_info("lwd", "pusht-image-full", 2, 2, env="pusht/image", action_horizon=32)["flops_per_step"]
    assert dp32 > 10 * lwd32 and dp32 < 10 * full32


def test_an_exported_image_run_takes_step_vectors_and_evaluates_as_the_library_does(runs, tmp_path):
    pytest.importorskip("onnxruntime")
    from lwd.checkpoint import load_model
    from lwd.deploy.export import export_run
    from lwd.deploy.exported import load_exported
    from lwd.evaluation.evaluate import evaluate

    root, _ = runs
    out = tmp_path / "export"
    _, line = export_run(root / "lwd", "npz", out)
    assert "image features (8)" in line and "--format encoder" in line
    export_run(root / "lwd", "onnx", out)
    with pytest.raises(FileNotFoundError, match="lwd export RUN --format encoder"):
        load_exported(load_model(root / "lwd"), out, root / "lwd")
    record, line = export_run(root / "lwd", "encoder", out)
    assert record["inputs"] == {"image": [96, 96, 3]} and record["features"] == FEATURES and record["max_abs_error"] < 1e-4
    spec = json.loads((out / "controller.json").read_text())
    assert spec["obs_dim"] == 2 + FEATURES and spec["layer_sizes"][0] == 2 * (2 + FEATURES) and "image features" in spec["obs"]

    short = short_pusht_image()
    model = load_model(root / "lwd")
    library = evaluate(model, short, episodes_per_task=2, progress=False)
    exported = evaluate(load_exported(model, out, root / "lwd"), short, episodes_per_task=2, progress=False)
    assert np.allclose([e["total_reward"] for e in exported["episodes"]], [e["total_reward"] for e in library["episodes"]],
                       rtol=1e-4, atol=1e-4)


def test_a_pusht_image_study_trains_and_evaluates_lwd_bc_and_dp_on_frames(runs, tmp_path, monkeypatch):
    import lwd.pipeline
    from lwd.experiments.study import run_study

    _, data = runs
    make_suite = lwd.pipeline.make_suite  # the study's evaluations run 6-step episodes (the suite's are 300)
    monkeypatch.setattr(lwd.pipeline, "make_suite", lambda name: short_pusht_image() if name == "pusht/image" else make_suite(name))
    quoted = lambda items: ", ".join(f'"{s}"' for s in items)  # noqa: E731
    dp = ["steps=2", "down_dims=[16,32]", "diffusion_step_embed_dim=16", "horizon=8", "action_steps=4", "image_width=16",
          "image_keypoints=4", "camera_features=8", "crop_shape=[88,88]", "sampler=ddim", "num_inference_steps=2"]
    (tmp_path / "image.toml").write_text(f"""
name = "image"
suite = "pusht/image"
episodes = 1
seeds = [0]
horizons = [4]
[data.tiny]
path = "{data}"
[methods.lwd]
set = [{quoted(TINY_LWD)}]
train_set = ["batch_size=4"]
[methods.bc]
set = [{quoted(TINY_BC)}]
train_set = ["batch_size=4"]
[methods.dp]
preset = "image-cpu"
set = [{quoted(dp)}]
train_set = ["batch_size=4"]
""")
    summary = run_study(tmp_path / "image.toml", root=tmp_path, progress=False)
    assert summary["cells_done"] == summary["cells_planned"] == 3
    cells = [json.loads(p.read_text()) for p in (tmp_path / "benchmarks/results/studies/image/cells").glob("*.json")]
    assert sorted(c["cell"]["method"] for c in cells) == ["bc", "dp", "lwd"]
    for cell in cells:  # every arm read the frames: its encoder is in its cost
        assert cell["cost"]["flops_image_encoders"] > 0 and cell["episodes_run"] == 1
