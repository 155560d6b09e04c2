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
    from lwd.deploy.export import export_controller

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
    import lwd.deploy.numpy_controller as module

    tree = ast.parse(open(module.__file__).read())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0}
    assert imported <= {"numpy", "json", "pathlib", "zipfile", "__future__"}, imported
    # And it runs in a process where torch and lwd cannot be imported.
    code = ("import sys; sys.modules['torch'] = None; sys.modules['lwd'] = None; "
            f"sys.path.insert(0, {str(tmp_path)!r}); import runner; print('ok')")
    (tmp_path / "runner.py").write_text(open(module.__file__).read())
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "ok"


@pytest.mark.parametrize("condition,eta,decoder", [("state", 0.0, "chunked"), ("state", 1.0, "chunked"),
                                                   ("task", 0.0, "chunked"), ("task", 1.0, "chunked"), ("task", 1.0, "basis")])
def test_onnx_generator_and_controller_match_torch(tmp_path, condition, eta, decoder):
    """generator.onnx gives the weights LWD.generate_policy gives for the same noise (the initial
    draw, then, with a stochastic sampler, one draw per step), and controller.onnx the actions of
    the in-library policy with those weights (ONNX Runtime)."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from lwd.checkpoint import save_model
    from lwd.config import DataInfo, RunConfig, TrainConfig
    from lwd.deploy.export import export_onnx

    episodes = make_episodes()
    cfg = LWDConfig(latent_dim=8, policy_hidden=(32,), chunk_size=256, hyper_hidden=(32,), encoder_dim=16, encoder_heads=2,
                    denoiser_width=32, denoiser_blocks=1, horizon=8, condition=condition, inference_steps=4, ddim_eta=eta,
                    decoder=decoder, basis_size=6)
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
    draws = torch.Generator().manual_seed(7)
    noise = torch.randn(1, cfg.latent_dim, generator=draws).numpy()  # the chain's first draw
    step_noise = torch.stack([torch.randn(1, cfg.latent_dim, generator=draws) for _ in range(4)]).numpy()
    feeds = {"noise": noise, "obs_history": history[None], "task": np.array([1], np.int64), "step_noise": step_noise}
    names = {i.name for i in generator.get_inputs()}
    assert ("step_noise" in names) == (eta > 0)
    theta = generator.run(None, {k: v for k, v in feeds.items() if k in names})[0]
    np.testing.assert_allclose(theta, expected.numpy(), atol=1e-4, rtol=1e-4)
    policy_action = model.make_policy()
    obs = history[-1]
    action = controller.run(None, {"theta": expected.numpy(), "obs": obs[None]})[0][0]
    layers = [(w[0].numpy(), b[0, 0].numpy()) for w, b in model.target.unflatten(expected)]
    from lwd.methods.target_mlp import fold_affine, numpy_mlp_forward

    reference = numpy_mlp_forward(model.target, fold_affine(layers, *policy_action._fold), obs)
    np.testing.assert_allclose(action, reference, atol=1e-5, rtol=1e-5)


@pytest.fixture
def exported_run(tmp_path):
    """An (untrained) LWD run exported with --format npz, with stand-in ONNX files whose hashes
    onnx.json records, as `lwd export --format onnx` records them (ONNX export itself is slow)."""
    import hashlib
    import json

    from lwd.checkpoint import save_model
    from lwd.config import DataInfo, RunConfig, TrainConfig
    from lwd.deploy.export import export_controller

    episodes = make_episodes()
    cfg = LWDConfig(latent_dim=4, policy_hidden=(8,), chunk_size=64, hyper_hidden=(8,), encoder_dim=8, encoder_heads=2,
                    denoiser_width=8, denoiser_blocks=1, horizon=4, condition="state")
    model = LWD(cfg, DataInfo(5, 2, ("t0",)), MinMaxNormalizer.fit(episodes.data)).eval()
    run, folder = tmp_path / "run", tmp_path / "exported"
    save_model(run, model, RunConfig("lwd", cfg, TrainConfig(), model.info))
    export_controller(run, folder)
    (folder / "generator.onnx").write_bytes(b"not an onnx graph")
    sha = lambda path: hashlib.sha256(path.read_bytes()).hexdigest()  # noqa: E731
    (folder / "onnx.json").write_text(json.dumps({"inference_steps": 10, "run_model_sha256": sha(run / "model.safetensors"),
                                                  "sha256": {"generator.onnx": sha(folder / "generator.onnx")}}))
    return run, folder


def _edit_json(name, **changes):
    def apply(folder):
        import json

        path = folder / name
        value = json.loads(path.read_text())
        for key, new in changes.items():
            if new is None:
                value.pop(key)
            else:
                value[key] = new
        path.write_text(json.dumps(value))
    return apply


def _npz(**arrays):
    def apply(folder):
        with np.load(folder / "controller.npz") as old:
            values = {k: old[k] for k in old.files}
        values.update(arrays)
        np.savez(folder / "controller.npz", **{k: v for k, v in values.items() if v is not None})
    return apply


BROKEN_EXPORTS = {
    "json-list": (lambda f: (f / "controller.json").write_text("[]"), r"controller.json must hold a JSON object, got list"),
    "json-number": (lambda f: (f / "controller.json").write_text("3"), r"controller.json must hold a JSON object, got int"),
    "json-not-json": (lambda f: (f / "controller.json").write_text("{"), r"controller.json is not readable JSON"),
    "no-layer-sizes": (_edit_json("controller.json", layer_sizes=None), r"layer_sizes must be a list"),
    "obs-dim-string": (_edit_json("controller.json", obs_dim="5"), r"obs_dim must be a positive integer, got '5'"),
    "unknown-activation": (_edit_json("controller.json", activation="swish"), r"activation must be one of relu, tanh, mish"),
    "npz-empty": (lambda f: (f / "controller.npz").write_bytes(b""), r"controller.npz is not a readable npz file"),
    "npz-truncated": (lambda f: (f / "controller.npz").write_bytes((f / "controller.npz").read_bytes()[:200]),
                      r"controller.npz is not a readable npz file"),
    "npz-no-obs-scale": (_npz(obs_scale=None), r"controller.npz has no obs_scale"),
    "npz-nan": (_npz(obs_scale=np.full(5, np.nan)), r"obs_scale holds NaN or infinite values"),
    "npz-wrong-shape": (_npz(action_shift=np.zeros(3)), r"action_shift has shape \(3,\), expected \(2,\)"),
    "runner-changed": (lambda f: (f / "lwd_controller.py").write_text("raise SystemExit"), r"lwd_controller.py is not the file exported"),
    "generator-swapped": (lambda f: (f / "generator.onnx").write_bytes(b"another graph"), r"generator.onnx is not the file exported"),
    "onnx-json-list": (lambda f: (f / "onnx.json").write_text("[]"), r"onnx.json must hold a JSON object, got list"),
    "from-another-run": (_edit_json("onnx.json", run_model_sha256="0" * 64), r"onnx.json was exported from another run"),
    "generator-not-onnx": (lambda f: None, r"generator.onnx is not a loadable ONNX graph"),
}


@pytest.mark.parametrize("name", sorted(BROKEN_EXPORTS))
def test_exported_files_are_checked_completely_before_they_run(exported_run, name):
    pytest.importorskip("onnxruntime")
    from lwd.checkpoint import load_model
    from lwd.deploy.exported import load_exported

    run, folder = exported_run
    edit, message = BROKEN_EXPORTS[name]
    edit(folder)
    with pytest.raises(ValueError, match=message):
        load_exported(load_model(run), folder, run)


def test_the_standalone_runner_refuses_an_unknown_activation(exported_run):
    """It used to run anything it did not know as mish."""
    _, folder = exported_run
    _edit_json("controller.json", activation="gelu")(folder)
    spec = importlib.util.spec_from_file_location("lwd_controller_copy", folder / "lwd_controller.py")
    runner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runner)
    with pytest.raises(ValueError, match="activation must be one of"):
        runner.Controller.load(folder)


def test_export_refuses_its_own_files_unless_overwrite_and_a_failed_export_keeps_the_old_ones(exported_run, monkeypatch):
    import errno

    import lwd.deploy.export as export

    run, folder = exported_run
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with pytest.raises(FileExistsError, match="already holds controller.json, controller.npz, lwd_controller.py; pass --overwrite"):
        export.export_controller(run, folder)

    def full_disk(model, run_dir, out):
        (out / "controller.npz").write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(export, "_write_controller", full_disk)
    with pytest.raises(OSError):
        export.export_controller(run, folder, overwrite=True)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # no temp folder, old files intact
    monkeypatch.undo()
    export.export_controller(run, folder, overwrite=True)
    assert (folder / "controller.npz").read_bytes() == before["controller.npz"]


def test_onnx_export_prints_one_line(tmp_path, capfd):
    """torch.onnx's progress, its torchvision warnings and torch.export's FutureWarning stay out of
    the output: a user sees what was written and how closely it matches torch."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from lwd.checkpoint import save_model
    from lwd.cli import main
    from lwd.config import DataInfo, RunConfig, TrainConfig

    episodes = make_episodes()
    cfg = LWDConfig(latent_dim=4, policy_hidden=(8,), chunk_size=64, hyper_hidden=(8,), encoder_dim=8, encoder_heads=2,
                    denoiser_width=8, denoiser_blocks=1, horizon=4, condition="state", inference_steps=2)
    model = LWD(cfg, DataInfo(5, 2, ("t0", "t1")), MinMaxNormalizer.fit(episodes.data)).eval()
    save_model(tmp_path / "run", model, RunConfig("lwd", cfg, TrainConfig(), model.info))
    capfd.readouterr()
    assert main(["export", str(tmp_path / "run"), "--format", "onnx", "--out", str(tmp_path / "onnx")]) == 0
    captured = capfd.readouterr()
    lines = [line for line in (captured.out + captured.err).splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("wrote "), lines
    assert "(DDIM, 2 steps)" in lines[0]  # the run's own
    assert main(["export", str(tmp_path / "run"), "--format", "onnx", "--inference-steps", "3", "--out", str(tmp_path / "onnx3")]) == 0
    assert "(DDIM, 3 steps)" in capfd.readouterr().out
