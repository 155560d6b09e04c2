"""The exported controller: NumPy only, and the same actions as the policy inside lwd."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys

import numpy as np
import pytest
import torch

from lwd.data import MinMaxNormalizer
from lwd.methods.lwd import LWD, LWDConfig

from conftest import make_episodes


@pytest.mark.parametrize("policy_obs_steps,activation", [(1, "relu"), (2, "mish")])
def test_exported_controller_reproduces_the_library_policy(tmp_path, policy_obs_steps, activation):
    from lwd.config import DataInfo, RunConfig, TrainConfig
    from lwd.checkpoint import save_model
    from lwd.export import export_controller

    episodes = make_episodes()
    cfg = LWDConfig(latent_dim=8, policy_hidden=(32, 32), chunk_size=256, hyper_hidden=(32,), encoder_dim=16, encoder_heads=2,
                    denoiser_width=32, denoiser_blocks=1, horizon=8, condition="state", policy_obs_steps=policy_obs_steps,
                    policy_activation=activation)
    torch.manual_seed(0)
    model = LWD(cfg, DataInfo(5, 2, ("t0", "t1")), MinMaxNormalizer.fit(episodes.data)).eval()
    save_model(tmp_path / "run", model, RunConfig("lwd", cfg, TrainConfig(), model.info))
    out = export_controller(tmp_path / "run", tmp_path / "controller")

    spec = importlib.util.spec_from_file_location("lwd_controller", out / "lwd_controller.py")
    runner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runner)
    controller = runner.Controller.load(out)

    # 1000 recorded observations, a new weight vector from the generator every 50 steps, as the policy does.
    policy = model.make_policy(model.runtime_options(action_horizon=50))
    policy.reset(seed=3)
    obs = np.asarray(episodes.data["obs"], np.float32)[:100]
    obs = np.concatenate([obs] * 10)
    errors = []
    for t, o in enumerate(obs):
        expected = policy.act(o)
        if t % 50 == 0:
            weights = np.concatenate([np.concatenate([w.reshape(-1), b]) for w, b in policy.policy_weights()])
            controller.set_weights(weights)
        if t == 0:
            controller.reset()
        errors.append(np.abs(controller.act(o) - expected).max())
    assert max(errors) < 1e-5


def test_the_runner_imports_numpy_and_the_standard_library_only(tmp_path):
    import lwd.numpy_controller as module

    tree = ast.parse(open(module.__file__).read())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0}
    assert imported <= {"numpy", "json", "pathlib", "__future__"}, imported
    # And it runs in a process where torch and lwd cannot be imported.
    code = ("import sys; sys.modules['torch'] = None; sys.modules['lwd'] = None; "
            f"sys.path.insert(0, {str(tmp_path)!r}); import runner; print('ok')")
    (tmp_path / "runner.py").write_text(open(module.__file__).read())
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "ok"


@pytest.mark.parametrize("condition", ["state", "task"])
def test_onnx_generator_and_controller_match_torch(tmp_path, condition):
    """generator.onnx gives the weights LWD.generate_policy gives for the same initial noise, and
    controller.onnx the actions of the in-library policy with those weights (ONNX Runtime)."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from lwd.checkpoint import save_model
    from lwd.config import DataInfo, RunConfig, TrainConfig
    from lwd.export import export_onnx

    episodes = make_episodes()
    cfg = LWDConfig(latent_dim=8, policy_hidden=(32,), chunk_size=256, hyper_hidden=(32,), encoder_dim=16, encoder_heads=2,
                    denoiser_width=32, denoiser_blocks=1, horizon=8, condition=condition, inference_steps=4)
    torch.manual_seed(0)
    model = LWD(cfg, DataInfo(5, 2, ("t0", "t1")), MinMaxNormalizer.fit(episodes.data)).eval()
    with torch.no_grad():
        model.latent_std.uniform_(0.5, 2.0)  # non-trivial latent statistics, as after training
        model.latent_mean.normal_()
    save_model(tmp_path / "run", model, RunConfig("lwd", cfg, TrainConfig(), model.info))
    errors = export_onnx(tmp_path / "run", tmp_path / "onnx")
    assert errors["generator_max_abs_error"] < 1e-4 and errors["inference_steps"] == 4

    options = ort.SessionOptions()
    options.log_severity_level = 3
    generator = ort.InferenceSession(str(tmp_path / "onnx" / "generator.onnx"), options)
    controller = ort.InferenceSession(str(tmp_path / "onnx" / "controller.onnx"), options)
    history = np.asarray(episodes.data["obs"][:2], np.float32)  # (To, Do) raw
    expected = model.generate_policy(1 if condition == "task" else None, model.normalizer.normalize("obs", history),
                                     torch.Generator().manual_seed(7))
    noise = torch.randn(1, cfg.latent_dim, generator=torch.Generator().manual_seed(7)).numpy()  # the chain's first draw
    feeds = {"noise": noise, "obs_history": history[None], "task": np.array([1], np.int64)}
    names = {i.name for i in generator.get_inputs()}
    theta = generator.run(None, {k: v for k, v in feeds.items() if k in names})[0]
    np.testing.assert_allclose(theta, expected.numpy(), atol=1e-4, rtol=1e-4)
    policy_action = model.make_policy()
    obs = history[-1]
    action = controller.run(None, {"theta": expected.numpy(), "obs": obs[None]})[0][0]
    layers = [(w[0].numpy(), b[0, 0].numpy()) for w, b in model.target.unflatten(expected)]
    from lwd.methods.lwd.target_mlp import fold_affine, numpy_mlp_forward

    reference = numpy_mlp_forward(model.target, fold_affine(layers, *policy_action._fold), obs)
    np.testing.assert_allclose(action, reference, atol=1e-5, rtol=1e-5)
