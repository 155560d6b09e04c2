"""The two-rate runtime: a control loop at a fixed rate, fed weights by a generator process."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lwd.data import MinMaxNormalizer
from lwd.methods.lwd import LWD, LWDConfig

from conftest import assert_exported_eval_matches_library, make_episodes

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from lwd.checkpoint import save_model
    from lwd.config import DataInfo, RunConfig, TrainConfig
    from lwd.deploy.export import export_controller, export_onnx

    root = tmp_path_factory.mktemp("runtime")
    episodes = make_episodes()
    cfg = LWDConfig(latent_dim=8, policy_hidden=(32, 32), chunk_size=256, hyper_hidden=(32,), encoder_dim=16, encoder_heads=2,
                    denoiser_width=32, denoiser_blocks=1, horizon=8, condition="state", inference_steps=4)
    torch.manual_seed(0)
    model = LWD(cfg, DataInfo(5, 2, ("t0", "t1")), MinMaxNormalizer.fit(episodes.data)).eval()
    save_model(root / "run", model, RunConfig("lwd", cfg, TrainConfig(), model.info))
    export_controller(root / "run", root / "out")
    export_onnx(root / "run", root / "out")
    return root / "out", np.asarray(episodes.data["obs"], np.float32)


class _Recording:
    """A controller that remembers every weight vector it was given."""

    def __init__(self, inner):
        self.inner, self.obs_steps, self.weights = inner, inner.obs_steps, []

    def set_weights(self, theta):
        self.weights.append(np.array(theta))
        self.inner.set_weights(theta)

    def act(self, obs):
        return self.inner.act(obs)


def test_loop_installs_fresh_weights_without_waiting_and_reports_timing(exported):
    from lwd.deploy.numpy_controller import Controller
    from lwd.deploy.runtime import OnnxGeneratorProcess, run_loop

    folder, obs = exported
    controller = _Recording(Controller.load(folder))
    actions = []
    with OnnxGeneratorProcess(folder, seed=1) as generator:
        report = run_loop(controller, generator, lambda i: obs[i % len(obs)], actions.append, steps=400, rate_hz=500,
                          action_horizon=8)
    summary = report.summary()
    assert summary["steps"] == 400 and len(actions) == 400
    assert summary["generations"] >= 2  # new weights arrived while the loop ran
    assert len(controller.weights) == len(report.weights_installed)
    installed = np.array(report.weights_installed)
    assert (np.diff(installed[:, 0]) > 0).all() and (installed[:, 1] <= installed[:, 0]).all()
    assert (installed[1:, 1] % 8 == 0).all()  # every weight vector comes from an observation at a request step
    assert (report.staleness >= 0).all() and summary["staleness_steps_max"] < 400
    assert summary["lateness_us_median"] >= 0 and summary["compute_us_median"] > 0  # timing is measured (BENCHMARKS has figures)

    # The actions are exactly the controller's on those observations with those weights, in that order.
    replay = Controller.load(folder)
    swaps = dict(zip(installed[:, 0].tolist(), controller.weights))
    for i, action in enumerate(actions):
        if i in swaps:
            replay.set_weights(swaps[i])
        np.testing.assert_array_equal(replay.act(obs[i % len(obs)]), action)


def test_generator_weights_are_those_of_the_exported_graph(exported):
    """The process returns what generator.onnx computes for its seeded noise and the history sent."""
    import onnxruntime as ort

    from lwd.deploy.runtime import OnnxGeneratorProcess

    folder, obs = exported
    history = obs[:2]
    with OnnxGeneratorProcess(folder, seed=5) as generator:
        theta = generator.generate(history)
    session = ort.InferenceSession(str(folder / "generator.onnx"), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    rng = np.random.default_rng(5)  # the process's draws: the initial noise, then the step noise if the sampler takes it
    feeds = {"noise": rng.standard_normal((1, 8)).astype(np.float32), "obs_history": history[None],
             "task": np.zeros(1, np.int64)}
    if "step_noise" in names:
        shape = next(tuple(i.shape) for i in session.get_inputs() if i.name == "step_noise")
        feeds["step_noise"] = rng.standard_normal(shape).astype(np.float32)
    expected = session.run(None, {k: v for k, v in feeds.items() if k in names})[0].reshape(-1)
    np.testing.assert_allclose(theta, expected, rtol=0, atol=1e-6)


def test_missing_generator_is_a_clear_error(tmp_path):
    from lwd.deploy.runtime import OnnxGeneratorProcess

    with pytest.raises(FileNotFoundError, match="lwd export RUN --format onnx"):
        OnnxGeneratorProcess(tmp_path)


def test_evaluation_through_the_exported_files_matches_the_library(tmp_path):
    """`lwd eval --exported`: ONNX generator + NumPy controller in the real simulator give the
    in-library policy's episodes (same seeds, same noise)."""
    pytest.importorskip("metaworld")
    from lwd.checkpoint import save_model
    from lwd.cli import main
    from lwd.config import DataInfo, RunConfig, TrainConfig

    rng = np.random.default_rng(0)
    data = {"obs": rng.normal(size=(64, 39)).astype(np.float32), "action": rng.uniform(-1, 1, (64, 4)).astype(np.float32)}
    cfg = LWDConfig(latent_dim=8, policy_hidden=(32,), chunk_size=256, hyper_hidden=(32,), encoder_dim=16, encoder_heads=2,
                    denoiser_width=32, denoiser_blocks=1, horizon=8, condition="state", inference_steps=3)
    torch.manual_seed(0)
    info = DataInfo(39, 4, ("reach",), suite="metaworld/reach-v3")
    model = LWD(cfg, info, MinMaxNormalizer.fit(data)).eval()
    save_model(tmp_path / "run", model, RunConfig("lwd", cfg, TrainConfig(), info))
    for fmt in ("npz", "onnx"):
        assert main(["export", str(tmp_path / "run"), "--format", fmt, "--out", str(tmp_path / "exported")]) == 0
    # Actions agree to ~1e-7; over 500 contact-rich steps of an untrained policy the trajectories
    # drift apart (see the helper), so the trajectories are compared over their first steps.
    assert_exported_eval_matches_library(tmp_path / "run", tmp_path / "exported", 3, tmp_path)
    args = ["eval", str(tmp_path / "run"), "--episodes", "3"]
    assert main([*args, "--exported", str(tmp_path / "exported"), "--inference-steps", "5"]) == 2  # graph fixed at 3 steps
