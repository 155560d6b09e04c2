"""The C export: the same actions as the library's controller, built with the machine's compiler."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
import torch

from lwd.data import MinMaxNormalizer
from lwd.deploy.export_c import ACTIVATION_C, CController, build_library, c_sources
from lwd.deploy.numpy_controller import Controller
from lwd.methods.lwd import LWD, LWDConfig
from lwd.methods.target_mlp import ACTIVATIONS, TargetMLPSpec, batched_mlp_forward

from conftest import assert_exported_eval_matches_library, make_episodes

needs_cc = pytest.mark.skipif(shutil.which("gcc") is None, reason="no gcc on this machine")
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _build_cache(tmp_path_factory, monkeypatch):
    """Libraries built on load go to a test folder, not the user's ~/.cache/lwd."""
    monkeypatch.setenv("LWD_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "lwd-cache"))


def _normalisers(obs_dim: int, action_dim: int, seed: int) -> dict[str, np.ndarray]:
    """Affine maps as a min-max normaliser fitted on data gives them: raw obs -> [-1, 1] -> raw action."""
    episodes = make_episodes(obs_dim=obs_dim, action_dim=action_dim, seed=seed)
    norm = MinMaxNormalizer.fit(episodes.data)
    obs_scale, obs_shift = norm.affine("obs")
    action_scale, action_shift = norm.affine("action", inverse=True)
    return {"obs_scale": np.asarray(obs_scale, np.float64), "obs_shift": np.asarray(obs_shift, np.float64),
            "action_scale": np.asarray(action_scale, np.float64), "action_shift": np.asarray(action_shift, np.float64)}


def test_every_activation_of_the_library_is_implemented_in_c_and_others_are_refused():
    assert set(ACTIVATION_C) == set(ACTIVATIONS)
    norm = _normalisers(3, 2, 0)
    with pytest.raises(ValueError, match="implements the activations relu, tanh, mish; this policy uses 'swish'"):
        c_sources([3, 8, 2], "swish", 1, **norm)
    from lwd.deploy.export import FILES
    from lwd.deploy.export_c import FILES as C_FILES

    assert FILES["c"] == C_FILES  # the export folder's bookkeeping names the files this format writes


@needs_cc
@pytest.mark.parametrize("activation,obs_steps,hidden", [("relu", 1, (32, 32)), ("mish", 2, (32, 32)), ("tanh", 2, (16,)),
                                                           ("relu", 1, ())])
def test_c_controller_matches_the_numpy_controller_and_the_torch_mlp(tmp_path, activation, obs_steps, hidden):
    """1000 observations, new weights every 50 steps: lwd_act equals the NumPy runner and
    batched_mlp_forward on normalised inputs within 1e-5, and lwd_step equals lwd_act."""
    obs_dim, action_dim = 5, 3
    norm = _normalisers(obs_dim, action_dim, seed=1)
    spec = TargetMLPSpec(obs_steps * obs_dim, action_dim, hidden, activation)
    for name, text in c_sources(spec.layer_sizes, activation, obs_steps, **norm).items():
        (tmp_path / name).write_text(text)
    c = CController(build_library(tmp_path, cache=False))
    assert (c.obs_dim, c.obs_steps, c.action_dim, c.num_params) == (obs_dim, obs_steps, action_dim, spec.num_params)
    reference = Controller({"format": "lwd-controller", "version": 1, "obs_dim": obs_dim, "action_dim": action_dim,
                            "policy_obs_steps": obs_steps, "layer_sizes": spec.layer_sizes, "activation": activation}, norm)
    gen = torch.Generator().manual_seed(0)
    obs = np.asarray(make_episodes(num_episodes=50, obs_dim=obs_dim, seed=2).data["obs"], np.float32)[:1000]
    assert len(obs) == 1000
    c_actions, np_actions, torch_actions, step_actions = [], [], [], []
    history = np.zeros((obs_steps, obs_dim), np.float32)
    for t, o in enumerate(obs):
        if t % 50 == 0:  # a sanely initialised policy, as a fresh decoder emits, scaled up so layers saturate a little
            theta = (2.0 * spec.init_std() * torch.randn(spec.num_params, generator=gen)).numpy()
            c.set_weights(theta)
            reference.set_weights(theta)
        if t % 200 == 0:  # a new episode now and then: the history restarts from the current observation
            c.reset()
            reference.reset()
            history[:] = o
        history = np.concatenate([history[1:], o[None]])
        c_actions.append(c.act(o))
        np_actions.append(reference.act(o))
        step_actions.append(c.step(history.reshape(-1)))
        x = history.reshape(-1) * np.tile(norm["obs_scale"], obs_steps) + np.tile(norm["obs_shift"], obs_steps)
        with torch.no_grad():
            y = batched_mlp_forward(spec, torch.as_tensor(theta)[None], torch.as_tensor(x, dtype=torch.float32)[None, None])
        torch_actions.append(y[0, 0].numpy() * norm["action_scale"] + norm["action_shift"])
    c_actions = np.array(c_actions)
    assert np.abs(c_actions).max() > 0.5  # actions of the data's size, so 1e-5 is a tight bound
    assert np.abs(c_actions - np.array(np_actions)).max() < 1e-5
    assert np.abs(c_actions - np.array(torch_actions)).max() < 1e-5
    np.testing.assert_array_equal(c_actions, np.array(step_actions))


@needs_cc
def test_each_c_controller_has_its_own_weights_and_history(tmp_path):
    """The library's state is static, so two instances (two envs evaluated side by side) load two copies."""
    norm = _normalisers(4, 2, 0)
    for name, text in c_sources([8, 16, 2], "relu", 2, **norm).items():
        (tmp_path / name).write_text(text)
    library = build_library(tmp_path, cache=False)
    a, b = CController(library), CController(library)
    with pytest.raises(RuntimeError, match="no weights yet"):
        a.act(np.zeros(4))
    theta = np.random.default_rng(0).normal(size=a.num_params).astype(np.float32)
    a.set_weights(theta)
    b.set_weights(-theta)
    o1, o2 = np.ones(4, np.float32), np.full(4, 3.0, np.float32)
    first = a.act(o1)
    b.act(o2)  # b's history must not reach a
    assert not np.allclose(a.act(o1), b.act(o1))
    a.reset()
    np.testing.assert_array_equal(a.act(o1), first)
    with pytest.raises(ValueError, match="NaN or infinite"):
        a.set_weights(np.full(a.num_params, np.nan, np.float32))
    np.testing.assert_array_equal(a.act(o1), a.act(o1))  # the old weights still run
    with pytest.raises(ValueError, match=f"expected {a.num_params} weights"):
        a.set_weights(theta[:-1])


def test_no_compiler_is_a_clear_error(tmp_path, monkeypatch):
    from lwd.deploy.export_c import build_library as build

    norm = _normalisers(3, 2, 0)
    for name, text in c_sources([3, 4, 2], "tanh", 1, **norm).items():
        (tmp_path / name).write_text(text)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("CC", raising=False)
    with pytest.raises(RuntimeError, match="no C compiler"):
        build(tmp_path, cache=False)


def _save_run(root, obs_dim=5, action_dim=2, suite="", activation="mish", policy_obs_steps=2, inference_steps=3):
    from lwd.checkpoint import save_model
    from lwd.config import DataInfo, RunConfig, TrainConfig

    rng = np.random.default_rng(0)
    data = {"obs": rng.normal(size=(64, obs_dim)).astype(np.float32),
            "action": rng.uniform(-1, 1, (64, action_dim)).astype(np.float32)}
    cfg = LWDConfig(latent_dim=8, policy_hidden=(32,), chunk_size=256, hyper_hidden=(32,), encoder_dim=16, encoder_heads=2,
                    denoiser_width=32, denoiser_blocks=1, horizon=8, condition="state", inference_steps=inference_steps,
                    policy_obs_steps=policy_obs_steps, policy_activation=activation)
    torch.manual_seed(0)
    info = DataInfo(obs_dim, action_dim, ("t0",), suite=suite)
    model = LWD(cfg, info, MinMaxNormalizer.fit(data)).eval()
    save_model(root / "run", model, RunConfig("lwd", cfg, TrainConfig(), info))
    return model, root / "run"


@needs_cc
def test_lwd_export_format_c_writes_sources_that_make_builds_and_that_reproduce_the_policy(tmp_path):
    from lwd.cli import main

    model, run = _save_run(tmp_path)
    out = tmp_path / "c"
    assert main(["export", str(run), "--format", "c", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["Makefile", "c.json", "lwd_controller.c", "lwd_controller.h"]
    record = json.loads((out / "c.json").read_text())
    assert record["activation"] == "mish" and record["num_params"] == model.target.num_params
    assert main(["export", str(run), "--format", "c", "--out", str(out)]) == 2  # refused without --overwrite
    assert main(["export", str(run), "--format", "c", "--out", str(out), "--overwrite"]) == 0
    if shutil.which("make"):  # the shipped Makefile builds the same library
        subprocess.run(["make", "-s", "-C", str(out)], check=True, capture_output=True)
        controller = CController(out / "liblwd_controller.so")
    else:
        controller = CController.load(out)
    # The in-library policy, a new weight vector every 50 steps, 1000 steps (as the NumPy export's test).
    policy = model.make_policy(model.runtime_options(action_horizon=50))
    policy.reset(seed=3)
    obs = np.asarray(np.random.default_rng(1).normal(size=(1000, 5)), np.float32)
    errors = []
    for t, o in enumerate(obs):
        expected = policy.act(o)
        if t % 50 == 0:
            controller.set_weights(np.concatenate([np.concatenate([w.reshape(-1), b]) for w, b in policy.policy_weights()]))
        errors.append(np.abs(controller.act(o) - expected).max())
    assert max(errors) < 1e-5


@pytest.fixture(scope="module")
def mt10_exported(tmp_path_factory):
    """A tiny MT10-shaped run (39-d observations, 4-d actions, metaworld reach) exported as npz, onnx and c."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from lwd.cli import main

    root = tmp_path_factory.mktemp("c-eval")
    _, run = _save_run(root, obs_dim=39, action_dim=4, suite="metaworld/reach-v3", activation="relu", policy_obs_steps=1)
    for fmt in ("npz", "onnx", "c"):
        assert main(["export", str(run), "--format", fmt, "--out", str(root / "exported")]) == 0
    return run, root / "exported"


@needs_cc
def test_lwd_eval_exported_runs_the_c_controller_and_matches_the_library(mt10_exported, tmp_path):
    """`lwd eval --exported` with a C export in the folder steps the compiled controller, and the
    episodes are the in-library policy's (same seeds, same successes and lengths)."""
    pytest.importorskip("metaworld")
    from lwd.checkpoint import load_model
    from lwd.cli import main
    from lwd.deploy.exported import load_exported

    run, folder = mt10_exported
    exported = load_exported(load_model(run), folder, run)
    assert exported._controller_class is CController
    assert isinstance(exported.make_policy().controller, CController)

    assert_exported_eval_matches_library(run, folder, 2, tmp_path)
    args = ["eval", str(run), "--episodes", "2"]

    (folder / "lwd_controller.c").write_text((folder / "lwd_controller.c").read_text() + "\n/* edited */\n")
    assert main([*args, "--exported", str(folder)]) == 2  # a changed C file is refused (its SHA-256 in c.json)


@needs_cc
def test_the_two_rate_runtime_steps_the_c_controller(mt10_exported):
    """run_loop with the C controller and generator.onnx in its process: the actions are those of the
    NumPy controller replayed with the same weights installed at the same steps."""
    from lwd.deploy.runtime import OnnxGeneratorProcess, run_loop

    _, folder = mt10_exported
    obs = np.random.default_rng(0).normal(size=(50, 39)).astype(np.float32)
    controller = CController.load(folder)
    installed: list[np.ndarray] = []
    original = controller.set_weights
    controller.set_weights = lambda theta: (installed.append(np.array(theta)), original(theta))[1]  # type: ignore[method-assign]
    actions: list[np.ndarray] = []
    with OnnxGeneratorProcess(folder, seed=1) as generator:
        report = run_loop(controller, generator, lambda i: obs[i % len(obs)], actions.append, steps=300, rate_hz=500,
                          action_horizon=8)
    assert len(actions) == 300 and report.summary()["generations"] >= 2 and len(installed) == len(report.weights_installed)
    replay = Controller.load(folder)
    swaps = dict(zip([step for step, _ in report.weights_installed], installed))
    for i, action in enumerate(actions):
        if i in swaps:
            replay.set_weights(swaps[i])
        np.testing.assert_allclose(action, replay.act(obs[i % len(obs)]), atol=1e-5, rtol=0)
