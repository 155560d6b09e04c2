"""Style on request: LWD's prior conditioned on the expert style, sampled with classifier-free guidance."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from lwd.checkpoint import load_model
from lwd.config import DataInfo, RunConfig, TrainConfig, from_dict, key_dict, to_dict
from lwd.data import DatasetError, Episodes, MinMaxNormalizer
from lwd.data.keys import ACTION, OBS
from lwd.methods.base import build_method
from lwd.methods.lwd import LWDConfig
from lwd.methods.lwd.style import StyleRequest
from lwd.methods.target_mlp import batched_mlp_forward
from lwd.pipeline import data_info, train_run

OFFSET = 0.7
"""Style "left" adds +OFFSET to the first action coordinate, "right" subtracts it, at the same states."""
TINY = ["latent_dim=4", "policy_hidden=[16]", "chunk_size=128", "hyper_hidden=[32]", "encoder_dim=16", "encoder_heads=2",
        "denoiser_width=64", "denoiser_blocks=2", "horizon=8", "condition=state", "prior_batch_size=128"]
TRAIN = ["batch_size=32", "warmup_steps=20"]


def two_style_episodes(pairs: int = 8, length: int = 16, seed: int = 0, styles: bool = True) -> tuple[Episodes, np.ndarray]:
    """Pairs of episodes on the very same states, one per style: a = 0.3 tanh(s W) +- (OFFSET, 0).
    Returns the episodes and W (so a test knows each style's action at any state)."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(2, 2)).astype(np.float32)
    episodes = []
    for _ in range(pairs):
        obs = np.cumsum(rng.normal(scale=0.3, size=(length, 2)), 0).astype(np.float32)
        base = 0.3 * np.tanh(obs @ w)
        for style, sign in ((0, 1.0), (1, -1.0)):
            episode = {"obs": obs, "action": (base + [sign * OFFSET, 0.0]).astype(np.float32)}
            if styles:
                episode["style"] = np.full(length, style, np.int64)
            episodes.append(episode)
    attrs = {"suite": "", **({"styles": ["left", "right"]} if styles else {})}
    return Episodes.from_list(episodes, attrs=attrs), w


def left_share(actions: np.ndarray, states: np.ndarray, w: np.ndarray) -> float:
    """Share of actions (N, 2) nearer to style "left"'s action at their state than to "right"'s."""
    base = 0.3 * np.tanh(states @ w)
    to_left = np.linalg.norm(actions - base - [OFFSET, 0.0], axis=1)
    to_right = np.linalg.norm(actions - base + [OFFSET, 0.0], axis=1)
    return float(np.mean(to_left < to_right))


@torch.no_grad()
def generated_actions(model, states: np.ndarray, style: int | None, guidance: float = 1.0, seed: int = 0) -> np.ndarray:
    """One policy generated per state (history [s, s], as at an episode's first step, batched) and its
    action at that state, in raw units: what LWDPolicy does at t = 0, for many states at once."""
    norm = model.normalizer
    s = torch.as_tensor(norm.normalize(OBS, states), dtype=torch.float32)  # (N, Do)
    hist = s[:, None].repeat(1, model.cfg.obs_steps, 1)  # (N, To, Do)
    uncond = model.condition(None, hist)
    if style is None:
        z = model.sample_latents(uncond, torch.Generator().manual_seed(seed))
    else:
        cond = model.condition(None, hist, torch.full((len(states),), style, dtype=torch.long))
        z = model.sample_latents(cond, torch.Generator().manual_seed(seed), uncond=uncond, guidance=guidance)
    actions = batched_mlp_forward(model.target, model.vae.decoder(z), s[:, None])[:, 0]  # (N, Da)
    return norm.unnormalize(ACTION, actions.numpy())


@pytest.fixture(scope="module")
def styled_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Episodes, np.ndarray]:
    """A tiny LWD with style_condition, trained through `train_run` (150 VAE + 150 prior steps) on two styles."""
    tmp = tmp_path_factory.mktemp("styled")
    episodes, w = two_style_episodes()
    data = episodes.save(tmp / "two-styles.zarr")
    torch.manual_seed(0)
    train_run("lwd", data, tmp / "run", overrides=[*TINY, "style_condition=true", "vae_steps=150", "prior_steps=150"],
              train_overrides=TRAIN, progress=False)
    return tmp / "run", episodes, w


def test_style_settings_off_leave_config_keys_saved_runs_and_weights_unchanged():
    """Off (the default) the new settings leave no trace in the config's key (study cells, caches), a
    config saved before they existed reads back equal, data with styles records no style names, and
    the weights trained on data with a style key are bit-identical to those on the same data without it."""
    cfg = LWDConfig(horizon=8, condition="state")
    assert "style_condition" not in key_dict(cfg) and "style_dropout" not in key_dict(cfg)
    saved = {k: v for k, v in to_dict(cfg).items() if k not in ("style_condition", "style_dropout")}  # a run saved before
    assert from_dict(LWDConfig, saved, saved=True) == cfg
    assert key_dict(dataclasses.replace(cfg, style_condition=True))["style_condition"] is True

    styled, _ = two_style_episodes(pairs=3)
    plain, _ = two_style_episodes(pairs=3, styles=False)
    info = data_info(styled, "styled.zarr")
    assert info.styles == () and "styles" not in RunConfig("lwd", cfg, TrainConfig(), info).to_json()["data"]
    small = LWDConfig(latent_dim=4, policy_hidden=(16,), chunk_size=128, hyper_hidden=(32,), encoder_dim=16, encoder_heads=2,
                      denoiser_width=32, denoiser_blocks=1, horizon=4, condition="state", prior_batch_size=32)
    weights = []
    for episodes in (styled, plain):
        model = build_method("lwd", small, data_info(episodes, "d.zarr"), MinMaxNormalizer.fit(episodes.data), seed=0)
        assert not any("style" in name for name in model.state_dict())
        rng = np.random.default_rng(0)
        for stage in model.stages(TrainConfig(batch_size=16), episodes):
            stage.prepare()
            opt = torch.optim.Adam(stage.module.parameters(), lr=1e-3)
            for _ in range(10):
                loss, _ = stage.loss(stage.sample_batch(rng))
                opt.zero_grad()
                loss.backward()
                opt.step()
        weights.append(model.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_a_requested_style_is_generated_far_more_often_than_the_other(styled_run):
    """Both styles act from the very same states, so only the label can tell the prior which to give.
    Unconditioned, the prior mixes them (the data is half and half); asked for one, at least 90% of the
    generated policies act in it at guidance 1 and 3. Why 0.9: a prior that ignored the label would sit
    at the data's 0.5 (binomial sd 0.06 over 64 states), and this run measured 1.00 for every request on
    training seeds 0, 1 and 2 (0.5-0.68 unconditioned), so 0.9 leaves room for states near the border."""
    run, episodes, w = styled_run
    model = load_model(run)
    assert model.info.styles == ("left", "right")
    states = episodes.data[OBS][::4][:64]  # (64, 2)
    unconditioned = left_share(generated_actions(model, states, None), states, w)
    assert 0.2 < unconditioned < 0.8, f"the unconditioned prior should mix both styles, gave left {unconditioned:.2f}"
    for guidance in (1.0, 3.0):
        left = left_share(generated_actions(model, states, 0, guidance), states, w)
        right = 1.0 - left_share(generated_actions(model, states, 1, guidance), states, w)
        assert left >= 0.9 and right >= 0.9, f"guidance {guidance}: asked left -> {left:.2f} left, asked right -> {right:.2f} right"

    # the run-time path (`lwd eval --style right --guidance 2`): each episode's first generated policy
    options = model.runtime_options(style="right", guidance=2.0)
    actions = []
    for i, s in enumerate(states[:16]):
        policy = model.make_policy(options)
        policy.reset(seed=i)
        actions.append(policy.act(s))
    assert left_share(np.stack(actions), states[:16], w) <= 0.1
    # guidance above 1 runs the denoiser twice a step; 1 runs it once
    unconditioned = model.cost(model.runtime_options())
    once, twice = (model.cost(model.runtime_options(style="left", guidance=g)) for g in (1.0, 2.0))
    assert once.flops_generation == unconditioned.flops_generation < twice.flops_generation
    assert once.to_dict()["style"] == "left" and twice.to_dict()["guidance"] == 2.0


def test_unknown_style_and_style_without_conditioning_are_refused_in_one_line(styled_run, capsys):
    from lwd.cli import main

    run, _, _ = styled_run
    model = load_model(run)
    with pytest.raises(ValueError, match=r"unknown style 'up'; this run knows left, right"):
        model.make_policy(model.runtime_options(style="up"))
    assert main(["info", str(run), "--style", "up"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown style 'up'; this run knows left, right" in err
    with pytest.raises(ValueError, match="guidance steers sampling toward a style"):
        model.runtime_options(guidance=2.0)
    with pytest.raises(ValueError, match="guidance must be a finite number >= 0"):
        model.runtime_options(style="left", guidance=-1.0)

    plain = build_method("lwd", LWDConfig(condition="state", horizon=8, latent_dim=4, denoiser_width=16, denoiser_blocks=1,
                                          policy_hidden=(8,), hyper_hidden=(8,), chunk_size=64),
                         DataInfo(2, 2), model.normalizer, seed=0)
    with pytest.raises(ValueError, match="trained without style_condition"):
        plain.make_policy(plain.runtime_options(style="left"))


def test_style_condition_refuses_data_without_style_ids_before_anything_trains(tmp_path, capsys):
    from lwd.cli import main

    plain, _ = two_style_episodes(pairs=2, styles=False)
    data = plain.save(tmp_path / "plain.zarr")
    with pytest.raises(DatasetError, match="has no per-step 'style' key, but style_condition=true"):
        train_run("lwd", data, tmp_path / "run", overrides=[*TINY, "style_condition=true"], train_overrides=TRAIN, progress=False)
    assert not (tmp_path / "run" / "model.safetensors").exists() and not (tmp_path / "run" / "train_state").exists()
    args = ["train", "lwd", "--data", str(data), "--out", str(tmp_path / "cli"), "--set", "style_condition=true",
            *[part for item in TINY for part in ("--set", item)]]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "style_condition=true" in err and "--styles all" in err
    # the model itself refuses too (the Python API without the pipeline), and so does a config without dropout
    cfg = LWDConfig(condition="state", style_condition=True)
    with pytest.raises(ValueError, match="style_condition=true needs data that records"):
        build_method("lwd", cfg, DataInfo(2, 2), MinMaxNormalizer.fit(plain.data))
    with pytest.raises(ValueError, match="style_dropout must be in"):
        LWDConfig(style_condition=True, style_dropout=0.0)


def test_exported_generator_is_the_unconditional_one_and_exported_eval_refuses_a_style(styled_run):
    """generator.onnx's graph (run here in torch, without exporting) computes the unconditional
    generation; the export says so, and evaluating the exported files refuses a style."""
    from lwd.methods.lwd.exported import ExportedMethod
    from lwd.methods.lwd.onnx_export import _GeneratorGraph, exporter

    run, episodes, _ = styled_run
    model = load_model(run).eval()
    model.cfg = dataclasses.replace(model.cfg, ddim_eta=0.0)  # deterministic DDIM: the initial noise is the only draw
    history = torch.as_tensor(episodes.data[OBS][:2])[None]  # (1, To, Do) raw
    noise = torch.randn(1, model.cfg.latent_dim, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        exported_theta = _GeneratorGraph(model, model.cfg.inference_steps)(noise, history, torch.zeros(1, dtype=torch.long))
    hist = model.normalizer.normalize(OBS, history[0].numpy())
    theta = model.generate_policy(None, hist, torch.Generator().manual_seed(3))  # no style: unconditional
    assert not torch.allclose(theta, model.generate_policy(None, hist, torch.Generator().manual_seed(3), style=StyleRequest(0, 1.0, "left")))
    torch.testing.assert_close(exported_theta, theta, rtol=1e-4, atol=1e-5)
    line = exporter(model).summary({"inference_steps": 10, "generator_max_abs_error": 0.0, "controller_max_abs_error": 0.0,
                                    "action_scale": 1.0}, Path("out"))
    assert "generator.onnx samples without a style" in line and "left, right" in line
    exported = SimpleNamespace(_method=model, exported_steps=model.cfg.inference_steps, _folder=Path("out"))
    with pytest.raises(ValueError, match="a style on request runs in the library only"):
        ExportedMethod.make_policy(exported, model.runtime_options(style="left"))  # type: ignore[arg-type]
