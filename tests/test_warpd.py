"""WARPD: the world model, the assisted loss and its gradients, training, resume, run-time cost."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from lwd.config import RunConfig, TrainConfig
from lwd.data import Episodes, MinMaxNormalizer
from lwd.methods import build_method
from lwd.methods.warpd import DynamicsEnsemble, WARPDConfig
from lwd.pipeline import data_info
from lwd.training.train import TrainingInterrupted, train

from conftest import make_episodes

TINY = WARPDConfig(latent_dim=8, policy_hidden=(16,), chunk_size=128, hyper_hidden=(32,), encoder_dim=16, encoder_heads=2,
                   denoiser_width=32, denoiser_blocks=1, horizon=8, vae_steps=40, prior_steps=10, prior_batch_size=16,
                   wm_steps=30, wm_hidden=(32,), wm_members=3, assist_steps=4, assist_warmup=10, policy_obs_steps=2)
TRAIN = TrainConfig(batch_size=16, warmup_steps=5, checkpoint_every=10)


def _model(cfg: WARPDConfig = TINY, episodes: Episodes | None = None):
    episodes = episodes or make_episodes(num_episodes=8, length=30)
    info = data_info(episodes, "memory")
    return build_method("warpd", cfg, info, MinMaxNormalizer.fit(episodes.data), seed=0), episodes, info


def _batch(model, episodes):
    dataset = model.segment_dataset(episodes)
    return dataset.sample_batch(np.arange(0, len(dataset), 7))


@pytest.mark.parametrize("target", ["state", "action", "both"])
def test_assist_gradients_reach_the_decoder_through_the_rollout_but_not_the_world_model(target):
    model, episodes, _ = _model(dataclasses.replace(TINY, assist_target=target))
    batch = _batch(model, episodes)
    mu, _ = model.vae.encoder(batch["states"], batch["actions"], batch["mask"], batch.get("task"))
    loss = model.assist_loss(model.vae.decoder(mu), batch)
    loss.backward()
    decoder_grad = sum(p.grad.abs().sum() for p in model.vae.decoder.parameters() if p.grad is not None)
    assert decoder_grad > 0
    assert all(p.grad is None for p in model.world_model.parameters())


def test_state_term_depends_on_the_policy_only_through_the_model():
    """With only the state term, the decoder's gradient exists only because the imagined states are
    the model's response to the policy's actions: zero the model's action weights and it vanishes."""
    model, episodes, _ = _model(dataclasses.replace(TINY, assist_target="state"))
    with torch.no_grad():
        for member in model.world_model.members:
            member[0].weight[:, model.info.obs_dim:] = 0.0  # the model ignores actions
    batch = _batch(model, episodes)
    theta = model.vae.decoder(torch.zeros(1, TINY.latent_dim)).expand(batch["states"].shape[0], -1)
    theta.retain_grad()
    model.assist_loss(theta, batch).backward()
    assert theta.grad.abs().max() == 0


class _TrueLinearDynamics(torch.nn.Module):
    """s' = A s + B a, written in the normaliser's units: the exact model a world model could learn."""

    def __init__(self, a_mat: np.ndarray, b_mat: np.ndarray, norm: MinMaxNormalizer) -> None:
        super().__init__()
        obs_scale, obs_shift = (torch.tensor(v, dtype=torch.float32) for v in norm.affine("obs"))
        act_scale, act_shift = (torch.tensor(v, dtype=torch.float32) for v in norm.affine("action"))
        a, b = torch.tensor(a_mat), torch.tensor(b_mat)

        def step(state: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            raw_s, raw_a = (state - obs_shift) / obs_scale, (action - act_shift) / act_scale
            return (raw_s @ a.T + raw_a @ b.T) * obs_scale + obs_shift, torch.zeros(state.shape[0])

        self._step = step

    def frozen_stepper(self):
        return self._step


def test_with_the_true_dynamics_the_assisted_loss_is_zero_for_the_expert_and_positive_off_it():
    """A linear system under a linear expert a = K s. With the true dynamics as WARPD's world model,
    the expert's own policy (written as theta by hand: relu(x) - relu(-x) = x) imagines exactly the
    demonstrated states and actions, so the assisted loss vanishes; a perturbed gain does not."""
    a_mat = np.array([[1.0, 0.1], [0.0, 1.0]], np.float32)
    b_mat = np.array([[0.0], [0.1]], np.float32)
    gain = np.array([[-1.0, -1.5]], np.float32)
    rng = np.random.default_rng(0)
    eps = []
    for _ in range(8):
        s, obs, act = rng.uniform(-1, 1, 2).astype(np.float32), [], []
        for _ in range(30):
            a = gain @ s
            obs.append(s)
            act.append(a)
            s = (a_mat @ s + b_mat @ a).astype(np.float32)
        eps.append({"obs": np.stack(obs), "action": np.stack(act)})
    episodes = Episodes.from_list(eps)
    cfg = dataclasses.replace(TINY, condition="state", policy_hidden=(4,), policy_obs_steps=1, assist_target="both", assist_steps=6,
                              assist_gate=0.0)
    model, _, _ = _model(cfg, episodes)
    model.world_model = _TrueLinearDynamics(a_mat, b_mat, model.normalizer)
    batch = model.segment_dataset(episodes).sample_batch(np.arange(len(model.segment_dataset(episodes))))

    def theta_for(k: np.ndarray) -> torch.Tensor:
        obs_scale, obs_shift = model.normalizer.affine("obs")
        act_scale, act_shift = model.normalizer.affine("action")
        m = (k / obs_scale[None, :]).T * act_scale[None, :]  # (Do, Da): normalised a = s_n @ m + c
        c = (-obs_shift / obs_scale) @ k.T * act_scale + act_shift
        w1 = np.concatenate([np.eye(2), -np.eye(2)], axis=1)  # (in 2, out 4)
        w2 = np.concatenate([m, -m], axis=0)  # (4, 1)
        flat = np.concatenate([w1.ravel(), np.zeros(4), w2.ravel(), c.ravel()]).astype(np.float32)
        return torch.from_numpy(flat)[None].expand(batch["states"].shape[0], -1)

    expert = float(model.assist_loss(theta_for(gain), batch))
    perturbed = float(model.assist_loss(theta_for(gain + np.array([[0.3, -0.3]], np.float32)), batch))
    assert expert < 1e-9, expert
    assert perturbed > 1e-3, perturbed


def test_stacked_step_equals_the_members_own_forward():
    model = DynamicsEnsemble(3, 2, members=4, hidden=(16, 8))
    state, action = torch.randn(5, 3), torch.randn(5, 2)
    x = torch.cat([state, action], dim=-1)
    deltas = torch.stack([member(x) for member in model.members])  # each member module on its own
    torch.testing.assert_close(model(state, action), deltas)
    nxt, disagreement = model.step(state, action)
    torch.testing.assert_close(nxt, state + deltas.mean(0))
    torch.testing.assert_close(disagreement, deltas.std(0, unbiased=False).mean(-1))
    frozen_next, _ = model.frozen_stepper()(state, action)
    torch.testing.assert_close(frozen_next, nxt)


def test_world_model_learns_a_linear_system():
    """s' = s + 0.1 A s + 0.1 a: after training, a 16-step open-loop rollout on unseen episodes is
    far closer to the truth than assuming the state stays put."""
    rng = np.random.default_rng(0)
    a_mat = np.array([[0.0, 1.0], [-1.0, -0.2]], np.float32)

    def episode(seed: int) -> dict[str, np.ndarray]:
        r = np.random.default_rng(seed)
        s = r.uniform(-1, 1, 2).astype(np.float32)
        obs, act = [], []
        for _ in range(40):
            a = r.normal(scale=0.5, size=2).astype(np.float32)
            obs.append(s)
            act.append(a)
            s = (s + 0.1 * (a_mat @ s) + 0.1 * a).astype(np.float32)
        return {"obs": np.stack(obs), "action": np.stack(act)}

    train_eps = Episodes.from_list([episode(i) for i in range(40)])
    test_eps = Episodes.from_list([episode(1000 + i) for i in range(10)])
    norm = MinMaxNormalizer.fit(train_eps.data)
    model = DynamicsEnsemble(2, 2, members=3, hidden=(64, 64))
    from lwd.data import SegmentDataset, WindowSpec

    spec = WindowSpec(obs_steps=1, action_steps=17, with_states=True)
    data = SegmentDataset(train_eps, spec, norm)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    torch.manual_seed(0)
    for _ in range(1500):
        b = data.sample_batch(rng.integers(len(data), size=64))
        loss = model.transition_loss(b["states"], b["actions"], b["mask"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    test = SegmentDataset(test_eps, spec, norm).sample_batch(np.asarray(test_eps.episode_starts))
    errors = model.rollout_errors(test["states"], test["actions"], test["mask"], (1, 4, 16))
    stay_put = float(((test["states"][:, 16] - test["states"][:, 0]) ** 2).mean())
    assert errors[1] < errors[4] < errors[16]
    assert errors[16] < 0.05 * stay_put, (errors, stay_put)


@pytest.mark.parametrize("mode", ["pretrain", "joint"])
def test_training_reports_world_model_error_and_resumes_exactly(tmp_path, mode):
    cfg = dataclasses.replace(TINY, wm_mode=mode)
    full, episodes, info = _model(cfg)
    run = RunConfig("warpd", cfg, TRAIN, info)
    log = train(full, episodes, TRAIN, run, tmp_path / "full", progress=False)
    report = log["reports"]["world_model" if mode == "pretrain" else "vae"]
    assert {"wm_rollout_mse_1", "wm_rollout_mse_4", "wm_rollout_mse_8"} <= set(report) and report["wm_validation_held_out"]
    assert all(row["assist"] >= 0 for row in log["stages"]["vae"])
    assert int(full.assist_calls) == cfg.vae_steps

    part, _, _ = _model(cfg)
    with pytest.raises(TrainingInterrupted):
        train(part, episodes, TRAIN, run, tmp_path / "part", progress=False, stop_after_steps=25 if mode == "pretrain" else 15)
    resumed, _, _ = _model(cfg)
    train(resumed, episodes, TRAIN, run, tmp_path / "part", resume=True, progress=False)
    for key, value in full.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_at_run_time_warpd_is_lwd_with_the_same_cost():
    from lwd.methods.lwd import LWDConfig

    model, episodes, info = _model()
    lwd_cfg = LWDConfig(**{f.name: getattr(TINY, f.name) for f in dataclasses.fields(LWDConfig)})
    lwd = build_method("lwd", lwd_cfg, info, model.normalizer, seed=0)
    for key, value in lwd.state_dict().items():  # the same seed gives LWD's initial weights
        assert torch.equal(value, model.state_dict()[key]), key
    runtime = model.runtime_options(action_horizon=8)
    assert model.cost(runtime).flops_per_step == lwd.cost(runtime).flops_per_step
    policy = model.make_policy(runtime)
    policy.reset(seed=1, task=0)
    assert policy.act(np.asarray(episodes.data["obs"][0])).shape == (2,)


@pytest.mark.parametrize("change,message", [({"assist_steps": 8}, "assist_steps"), ({"wm_mode": "later"}, "wm_mode"),
                                            ({"assist_target": "x"}, "assist_target"), ({"assist_weight": -1.0}, "assist_weight")])
def test_bad_settings_are_refused(change, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(TINY, **change)


def test_imagined_recovery_starts_rollouts_off_the_demonstration():
    """assist_start_noise > 0 displaces the imagined start: the expert's own policy, exact under the
    true dynamics from the demonstrated start, now has a positive state loss (it must steer back)."""
    model, episodes, _ = _model(dataclasses.replace(TINY, assist_target="state"))
    batch = _batch(model, episodes)
    mu, _ = model.vae.encoder(batch["states"], batch["actions"], batch["mask"], batch.get("task"))
    theta = model.vae.decoder(mu).detach()
    plain = model.assist_loss(theta, batch)
    noisy_model, _, _ = _model(dataclasses.replace(TINY, assist_target="state", assist_start_noise=0.5), episodes)
    noisy_model.load_state_dict(model.state_dict())
    torch.manual_seed(0)
    noisy = noisy_model.assist_loss(theta, batch)
    assert noisy > plain + 1e-3


def test_a_setting_added_later_keeps_old_cache_keys_at_its_default():
    from lwd.config import key_dict, to_dict

    cfg = WARPDConfig()
    assert "assist_start_noise" in to_dict(cfg) and "assist_start_noise" not in key_dict(cfg)
    assert key_dict(dataclasses.replace(cfg, assist_start_noise=0.1))["assist_start_noise"] == 0.1


def test_world_model_error_replays_executed_actions_and_skips_pushed_windows():
    """benchmarks/world_model_error.py on data made with DART noise and pushes: a model with the true
    dynamics must score zero, which it only does if the script replays what the env executed (not
    the labels) and drops windows a push interrupted."""
    import importlib.util
    from pathlib import Path
    from types import SimpleNamespace

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "world_model_error.py"
    spec = importlib.util.spec_from_file_location("world_model_error", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)

    rng = np.random.default_rng(0)
    executed = rng.uniform(-1, 1, (40, 2)).astype(np.float32)
    push = np.zeros(40, bool)
    push[9] = True  # transition 9 -> 10 moved by a push
    obs = np.zeros((40, 2), np.float32)
    for t in range(39):
        obs[t + 1] = obs[t] + executed[t] + (5.0 if push[t] else 0.0)
    data = {"obs": obs, "action": executed + 0.5, "executed_action": executed, "pushed": push}
    episodes = Episodes(data, np.array([20, 40]))
    norm = MinMaxNormalizer.fit(data)

    def step(state, action):  # the true dynamics, in the normaliser's units
        raw = norm.unnormalize("obs", state.numpy()) + norm.unnormalize("action", action.numpy())
        return torch.from_numpy(norm.normalize("obs", raw).astype(np.float32)), torch.zeros(len(state))

    model = SimpleNamespace(normalizer=norm, world_model=SimpleNamespace(step=step))
    out = script.measure(model, episodes, [1, 4], stride=1)
    assert out["actions"] == "executed" and out["pushed_transitions"] == 1
    assert out["mse_1"] < 1e-10 and out["mse_4"] < 1e-10
    # windows of one transition: 19 per episode, less the pushed one; of 4: 16 per episode, less 4
    assert (out["windows_1"], out["windows_4"]) == (37, 28)
    labelled = Episodes({k: v for k, v in data.items() if k != "executed_action"}, np.array([20, 40]))
    wrong = script.measure(model, labelled, [1], stride=1)["mse_1"]
    assert wrong > 1e-3  # the labels are not what moved the env
    # in the units of a run whose states span twice the range: errors a quarter as large
    wider = MinMaxNormalizer.fit({"obs": 2 * obs, "action": executed})
    assert script.measure(model, labelled, [1], stride=1, units=wider)["mse_1"] == pytest.approx(wrong / 4, rel=1e-5)


def _recorded(episodes: Episodes, executed: np.ndarray, pushed: np.ndarray, obs: np.ndarray | None = None) -> Episodes:
    """`episodes` as `lwd demos` writes recovery data: executed actions and push flags per step."""
    data = {**episodes.data, "executed_action": executed, "pushed": pushed}
    if obs is not None:
        data["obs"] = obs
    return Episodes(data=data, episode_ends=episodes.episode_ends,
                    attrs={**episodes.attrs, "dart_noise": 0.1, "perturbation": "object-push:3:0.05"})


def test_world_model_fits_the_executed_actions_and_never_a_pushed_transition():
    """The world model's loss reads the executed actions, not the labels, and no transition a push
    interrupted: changing what a push did leaves it unchanged, changing an unpushed step does not."""
    model, episodes, _ = _model()
    rng = np.random.default_rng(1)
    executed = (episodes.data["action"] + rng.normal(scale=0.1, size=episodes.data["action"].shape)).astype(np.float32)
    pushed = np.zeros(episodes.num_steps, np.bool_)
    between = np.arange(3, episodes.num_steps - 2, 5)  # the states between two pushed transitions
    pushed[between - 1] = pushed[between] = True
    moved = episodes.data["obs"].copy()
    moved[between] += 0.7

    def wm_loss(eps: Episodes) -> float:
        stage = next(s for s in model.stages(TRAIN, eps) if s.name == "world_model")
        return float(stage.loss(stage.sample_batch(np.random.default_rng(0)))[0].detach())

    base = wm_loss(_recorded(episodes, executed, pushed))
    relabelled = Episodes(data={**episodes.data, "action": -episodes.data["action"]}, episode_ends=episodes.episode_ends,
                          attrs=episodes.attrs)
    assert wm_loss(_recorded(relabelled, executed, pushed)) == base
    assert wm_loss(_recorded(episodes, executed, pushed, obs=moved)) == base
    assert wm_loss(_recorded(episodes, executed + 0.3, pushed)) != base
    assert wm_loss(_recorded(episodes, executed, np.zeros_like(pushed), obs=moved)) != wm_loss(
        _recorded(episodes, executed, np.zeros_like(pushed)))


def test_imagined_steps_after_a_push_do_not_count():
    """An imagined rollout cannot be pushed: demonstrated states after a push are no target for it."""
    model, episodes, _ = _model(dataclasses.replace(TINY, assist_target="both"))
    rng = np.random.default_rng(2)
    executed = episodes.data["action"].copy()
    pushed = rng.random(episodes.num_steps) < 0.3
    dataset = model.segment_dataset(_recorded(episodes, executed, pushed), with_dynamics=True)
    batch = dataset.sample_batch(np.arange(0, len(dataset), 3))
    theta = model.vae.decoder(torch.zeros(1, TINY.latent_dim)).expand(batch["states"].shape[0], -1).detach()

    reachable = torch.cat([torch.ones_like(batch["mask"][:, :1]), batch["unpushed"][:, :-1].cumprod(1)], dim=1)
    assert 0 < float(reachable.mean()) < float(batch["mask"].mean())  # some steps follow a push, some do not
    without_dynamics = {k: v for k, v in batch.items() if k not in ("driving_actions", "unpushed")}
    truncated = {**without_dynamics, "mask": batch["mask"] * reachable}
    torch.testing.assert_close(model.assist_loss(theta, batch), model.assist_loss(theta, truncated))
    assert not torch.allclose(model.assist_loss(theta, batch), model.assist_loss(theta, without_dynamics))
