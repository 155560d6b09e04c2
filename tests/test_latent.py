"""The latent: settings that keep it informative (KL warm-up, free bits), the diagnostics that say
whether it is used, and whether the latent prior reproduces a multimodal posterior."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lwd.config import DataInfo, TrainConfig
from lwd.data import MinMaxNormalizer
from lwd.methods.lwd import LWD, LWDConfig
from lwd.methods.lwd.diagnostics import action_spread, mmd_rbf, posterior_report, prior_report
from lwd.methods.lwd.model import kl_penalty
from lwd.methods.lwd.prior_check import TwoClusters, cluster_fit, train_prior_on_clusters
from lwd.methods.target_mlp import TargetMLPSpec

from conftest import make_episodes

SMALL = dict(latent_dim=6, policy_hidden=(16,), chunk_size=128, hyper_hidden=(32,), encoder_dim=16,
             encoder_layers=1, encoder_heads=2, denoiser_width=32, denoiser_blocks=1, horizon=4, condition="state",
             vae_steps=4, prior_steps=4)


def _tiny(**over):
    episodes = make_episodes(num_tasks=1)
    model = LWD(LWDConfig(**{**SMALL, **over}), DataInfo(5, 2, ("t0",)), MinMaxNormalizer.fit(episodes.data))
    return model, episodes


# ------------------------------------------------------------------ settings
def test_free_bits_floor_each_dimension_and_stop_its_gradient():
    mu = torch.tensor([[0.1, 2.0], [-0.1, 2.0]], requires_grad=True)  # dim 0: KL 0.005 nats, dim 1: 2 nats
    logvar = torch.zeros(2, 2)
    paid, kl = kl_penalty(mu, logvar, free_bits=0.5)
    assert kl.item() == pytest.approx(0.005 + 2.0)
    assert paid.item() == pytest.approx(0.5 + 2.0)  # dim 0 pays the floor, dim 1 its own KL
    paid.backward()
    assert mu.grad[:, 0].abs().max() == 0  # below the floor: no pull toward the prior
    assert mu.grad[:, 1].abs().min() > 0
    plain, true = kl_penalty(mu.detach(), logvar, free_bits=0.0)
    assert plain.item() == true.item() == kl.item()


def test_kl_warmup_ramps_the_weight_from_zero_during_the_vae_stage():
    model, episodes = _tiny(kl_weight=0.5, kl_warmup_steps=10)
    vae = model.stages(TrainConfig(batch_size=8), episodes)[0]
    batch = vae.sample_batch(np.random.default_rng(0))
    weights = []
    for step in (0, 5, 10, 50):
        vae.on_step(step)
        torch.manual_seed(0)
        loss, metrics = vae.loss(batch)
        weights.append((loss - metrics["bc_mse"]).item() / metrics["kl"].item())
    assert weights == pytest.approx([0.0, 0.25, 0.5, 0.5], rel=1e-4)


def test_without_warmup_the_kl_weight_is_constant():
    model, episodes = _tiny(kl_weight=0.5)
    vae = model.stages(TrainConfig(batch_size=8), episodes)[0]
    batch = vae.sample_batch(np.random.default_rng(0))
    vae.on_step(0)
    loss, metrics = vae.loss(batch)
    assert (loss - metrics["bc_mse"]).item() == pytest.approx(0.5 * metrics["kl"].item(), rel=1e-4)


def test_free_bits_raise_the_trained_latent_kl():
    """Trained briefly at a large KL weight, the posterior collapses toward the prior; a floor of
    free bits per dimension keeps it away (the logged KL is the true KL)."""
    def final_kl(free_bits: float) -> float:
        torch.manual_seed(0)
        model, episodes = _tiny(kl_weight=1.0, free_bits=free_bits, vae_steps=150)
        from lwd.training.train import fit_stage

        history = fit_stage(model, model.stages(TrainConfig(batch_size=16, lr=3e-3), episodes)[0], TrainConfig(batch_size=16, lr=3e-3))
        return history[-1]["kl"]

    assert final_kl(1.0) > 3 * final_kl(0.0)


# ------------------------------------------------------------------ diagnostics
def test_action_spread_is_zero_for_a_decoder_that_ignores_z_and_the_latent_std_for_one_that_copies_it():
    spec = TargetMLPSpec(2, 1, (3,))
    inputs = torch.randn(5, 2)
    same = torch.randn(spec.num_params).expand(5, 4, -1)  # 4 identical policies per input
    assert action_spread(spec, same, inputs) == 0.0
    z = torch.randn(5, 4)
    copies = torch.zeros(5, 4, spec.num_params)
    copies[..., -1] = z  # output bias = z, every weight 0: the policy's action is z itself
    assert action_spread(spec, copies, inputs) == pytest.approx(float(z.std(1, unbiased=False).mean()), rel=1e-5)


def test_diagnostics_see_a_decoder_that_ignores_z():
    model, episodes = _tiny()
    dataset = model.segment_dataset(episodes)
    starts = np.arange(len(dataset))
    torch.nn.init.zeros_(model.vae.decoder.head.weight)  # theta = base: z has no effect
    report = posterior_report(model, dataset, starts)
    assert report["z_dependence_posterior"] == 0.0
    assert len(report["kl_per_dim"]) == 6 and report["kl"] == pytest.approx(sum(report["kl_per_dim"]), rel=1e-3)
    model.encode_latents(dataset, starts)
    assert prior_report(model, dataset, starts)["z_dependence_prior"] == 0.0


def test_diagnostics_count_active_units_and_see_a_decoder_that_reads_z():
    model, episodes = _tiny()
    dataset = model.segment_dataset(episodes)
    starts = np.arange(len(dataset))
    report = posterior_report(model, dataset, starts)
    assert report["z_dependence_posterior"] > 0.0
    # an encoder whose mean output is scaled up varies over the data in every dimension
    with torch.no_grad():
        for p in model.vae.encoder.parameters():
            p.mul_(3.0)
    assert posterior_report(model, dataset, starts)["active_units"] >= report["active_units"]


def test_prior_fit_compares_generated_latents_with_posterior_samples_not_means():
    """A prior that samples exactly the aggregated posterior (3 informative dimensions, 3 collapsed to
    N(0, 1)) fits: about 5% off support and a nearest-neighbour ratio near 1. Measured against the
    posterior means instead, every sample looked off support (the collapsed dimensions' noise)."""
    model, episodes = _tiny()
    dataset = model.segment_dataset(episodes)
    starts = np.arange(len(dataset))

    class Encoder(torch.nn.Module):  # segment -> (mu, logvar): 3 dimensions read the actions, 3 collapsed
        def forward(self, states, actions, mask, task=None):
            a = actions.mean(1)[:, :1]
            mu = torch.cat([a, 2 * a.sin(), (3 * a).cos(), torch.zeros(len(a), 3)], 1)
            return mu, torch.cat([torch.full((len(a), 3), -12.0), torch.zeros(len(a), 3)], 1)

    model.vae.encoder = Encoder()
    pool = model.vae.encoder(*(dataset.sample_batch(starts)[k] for k in ("states", "actions", "mask")))[0][:, :3]
    with torch.no_grad():
        model.latent_mean.zero_()
        model.latent_std.fill_(1.0)

    def aggregated_posterior(cond, generator=None, **_):
        rows = torch.randint(len(pool), (len(cond),), generator=generator)
        return torch.cat([pool[rows], torch.randn(len(cond), 3, generator=generator)], 1)

    model.sample_latents = aggregated_posterior
    report = prior_report(model, dataset, starts)
    assert report["reference"] == "posterior samples"
    assert report["off_support"] < 0.2 and 0.5 < report["nn_ratio"] < 1.5, report
    assert report["prior_mmd"] < 3 * report["posterior_mmd"] + 0.01, report


def test_mmd_is_zero_for_equal_samples_and_grows_with_a_shift():
    x = torch.randn(200, 3, generator=torch.Generator().manual_seed(0))
    assert mmd_rbf(x, x, 1.0) == pytest.approx(0.0, abs=1e-6)
    assert mmd_rbf(x, x + 3.0, 1.0) > 10 * mmd_rbf(x, torch.randn(200, 3, generator=torch.Generator().manual_seed(1)), 1.0)


def test_cluster_fit_counts_samples_between_clusters():
    clusters = TwoClusters(separation=6.0, spread=0.25, weight=0.7, count=1000)
    latents, labels, centres = clusters.sample(8)
    exact = cluster_fit(latents, latents, labels, centres)
    assert exact.inside == 1.0 and exact.between == 0.0
    assert exact.shares == pytest.approx([0.7, 0.3], abs=0.05)
    midpoints = np.zeros((100, 8), np.float32)  # the blend of the two behaviours
    blended = cluster_fit(midpoints, latents, labels, centres)
    assert blended.inside == 0.0 and blended.between == 1.0


# ------------------------------------------------------------------ the prior
@pytest.mark.slow
def test_default_prior_reproduces_two_clusters_under_one_condition():
    """LWD's prior with its default settings and budget, trained alone on latents in two
    well-separated clusters (70 / 30) seen from the same state: its samples must land in the
    clusters, not between them, in the data's proportions."""
    cfg = LWDConfig(condition="state")
    fit = train_prior_on_clusters(cfg, TwoClusters()).measure(samples=2000)
    assert fit.inside >= 0.95, fit.to_json()
    assert all(abs(s - d) <= 0.1 for s, d in zip(fit.shares, fit.data_shares)), fit.to_json()


def test_runs_saved_before_ddim_eta_keep_deterministic_sampling_and_their_cache_keys():
    """ddim_eta's default changed to 1; a config.json without it is an older run, which sampled with 0."""
    from lwd.config import from_dict, key_dict, to_dict

    old = to_dict(LWDConfig())
    old.pop("ddim_eta")
    assert from_dict(LWDConfig, old, saved=True).ddim_eta == 0.0
    assert from_dict(LWDConfig, old).ddim_eta == 1.0  # a new config (preset, --set) gets the new default
    assert "ddim_eta" not in key_dict(LWDConfig(ddim_eta=0.0))  # older study cells keep their keys
    assert key_dict(LWDConfig())["ddim_eta"] == 1.0


def test_a_trained_run_logs_latent_diagnostics_and_lwd_info_shows_them(tmp_path):
    import json

    from lwd.pipeline import run_info, train_run

    make_episodes(num_tasks=1).save(tmp_path / "demos.zarr")
    overrides = [f"{k}={json.dumps(list(v) if isinstance(v, tuple) else v)}" for k, v in SMALL.items()]
    train_run("lwd", tmp_path / "demos.zarr", tmp_path / "run", overrides=overrides, progress=False)
    reports = json.loads((tmp_path / "run" / "train_log.json").read_text())["reports"]
    assert len(reports["vae"]["latent"]["kl_per_dim"]) == SMALL["latent_dim"]
    assert {"z_dependence_prior", "bc_mse_prior", "prior_mmd"} <= set(reports["prior"]["latent"])
    info = run_info(tmp_path / "run")
    assert "vae: latent.active_units" in info and "prior: latent.z_dependence_prior" in info
    assert not any("kl_per_dim" in key for key in info)  # per-dimension lists stay in the JSON
