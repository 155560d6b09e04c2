"""`lwd export RUN --format npz|onnx --out DIR`: a trained LWD for a robot without torch.

npz: the generated MLP's description (`controller.json`), its normalisers (`controller.npz`) and
the standalone NumPy runner (`lwd_controller.py`, a copy of `lwd.numpy_controller`); the weights
come from the generator at run time (`Controller.set_weights`).

onnx: `controller.onnx` (theta and raw stacked observations in, raw action out: new weights need
no re-export) and `generator.onnx` (initial latent noise, raw observation history and task id in,
theta out: DDIM unrolled), each checked against torch with ONNX Runtime.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lwd import numpy_controller
from lwd.checkpoint import load_model
from lwd.data.keys import ACTION, OBS
from lwd.optional import require

FORMATS = ("npz", "onnx")


def _check_generates(model: Any, run_dir: str | Path) -> None:
    if getattr(model, "target", None) is None or not hasattr(model, "generate_policy"):
        raise ValueError(f"{run_dir} holds a {model.name} run; only methods that generate policy weights (lwd) export a controller")


def export_controller(run_dir: str | Path, out: str | Path) -> Path:
    """Write the controller of a trained LWD run to folder `out`; returns it."""
    model = load_model(run_dir)
    _check_generates(model, run_dir)
    target = model.target
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    obs_scale, obs_shift = model.normalizer.affine(OBS)
    action_scale, action_shift = model.normalizer.affine(ACTION, inverse=True)
    spec = {"format": numpy_controller.FORMAT, "version": numpy_controller.VERSION, "method": model.name,
            "obs_dim": model.info.obs_dim, "action_dim": model.info.action_dim, "policy_obs_steps": model.cfg.policy_obs_steps,
            "layer_sizes": target.layer_sizes, "activation": target.activation, "num_params": target.num_params,
            "layout": "layer by layer: weight (in, out) row-major, then bias (out,); normalised obs in, normalised action out",
            "trained_on": model.info.suite or model.info.dataset}
    (out / "controller.json").write_text(json.dumps(spec, indent=2))
    np.savez(out / "controller.npz", obs_scale=np.asarray(obs_scale, np.float64), obs_shift=np.asarray(obs_shift, np.float64),
             action_scale=np.asarray(action_scale, np.float64), action_shift=np.asarray(action_shift, np.float64))
    shutil.copyfile(numpy_controller.__file__, out / "lwd_controller.py")
    return out


# ------------------------------------------------------------------------------ ONNX
class _ControllerGraph(torch.nn.Module):
    """theta (1, P) as generated + raw stacked observations (1, k*Do) -> raw action (1, Da)."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        k = model.cfg.policy_obs_steps
        obs_scale, obs_shift = model.normalizer.affine(OBS)
        act_scale, act_shift = model.normalizer.affine(ACTION, inverse=True)
        self.spec = model.target
        for name, value in (("in_scale", np.tile(obs_scale, k)), ("in_shift", np.tile(obs_shift, k)),
                            ("out_scale", act_scale), ("out_shift", act_shift)):
            self.register_buffer(name, torch.as_tensor(np.asarray(value, np.float32)))

    def forward(self, theta: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        from lwd.methods.lwd.target_mlp import batched_mlp_forward

        x = obs * self.in_scale + self.in_shift
        action = batched_mlp_forward(self.spec, theta, x[:, None])[:, 0]
        return action * self.out_scale + self.out_shift


class _GeneratorGraph(torch.nn.Module):
    """Initial latent noise (1, Dz) + raw observation history (1, To, Do) + task id (1,) -> theta (1, P).

    The DDIM chain is unrolled over the sampler's fixed timesteps, through the library's own
    scheduler step, so the graph computes what `LWD.generate_policy` computes for that noise."""

    def __init__(self, model: Any, steps: int) -> None:
        super().__init__()
        self.model = model
        self.scheduler = model.samplers.get("ddim", steps)
        self.timesteps = [int(k) for k in self.scheduler.timesteps]
        scale, shift = model.normalizer.affine(OBS)
        self.register_buffer("obs_scale", torch.as_tensor(np.asarray(scale, np.float32)))
        self.register_buffer("obs_shift", torch.as_tensor(np.asarray(shift, np.float32)))

    def forward(self, noise: torch.Tensor, obs_history: torch.Tensor, task: torch.Tensor) -> torch.Tensor:
        model = self.model
        hist = obs_history * self.obs_scale + self.obs_shift
        cond = model.condition(task if model.cfg.uses_task else None, hist if model.cfg.uses_state else None)
        z = noise
        for k in self.timesteps:
            eps = model.prior(z, torch.full((1,), k, dtype=torch.long), cond)
            z = self.scheduler.step(eps, k, z).prev_sample
        return model.vae.decoder(z * model.latent_std + model.latent_mean)


def export_onnx(run_dir: str | Path, out: str | Path, inference_steps: int | None = None, tolerance: float = 1e-4) -> dict[str, Any]:
    """controller.onnx and generator.onnx (DDIM, `inference_steps` or the run's), each checked
    against torch with ONNX Runtime on random inputs; returns the largest differences."""
    require("onnxruntime", "export")
    require("onnxscript", "export")
    import onnxruntime as ort

    model = load_model(run_dir)
    _check_generates(model, run_dir)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    steps = inference_steps or model.cfg.inference_steps
    rng = np.random.default_rng(0)
    k, dims = model.cfg.policy_obs_steps, model.info.obs_dim
    low, high = (np.asarray(a, np.float32) for a in model.normalizer.unnormalize(OBS, np.stack([-np.ones(dims), np.ones(dims)])))
    history = torch.as_tensor(rng.uniform(low, high, (1, model.cfg.obs_steps, dims)).astype(np.float32))
    task = torch.zeros(1, dtype=torch.long)
    noise = torch.as_tensor(rng.normal(size=(1, model.cfg.latent_dim)).astype(np.float32))
    generator = _GeneratorGraph(model, steps).eval()
    controller = _ControllerGraph(model).eval()
    with torch.no_grad():
        theta = generator(noise, history, task)
        obs = history[:, -k:].reshape(1, k * dims)
        action = controller(theta, obs)
        torch.onnx.export(generator, (noise, history, task), out / "generator.onnx", input_names=["noise", "obs_history", "task"],
                          output_names=["theta"], dynamo=True)
        torch.onnx.export(controller, (theta, obs), out / "controller.onnx", input_names=["theta", "obs"],
                          output_names=["action"], dynamo=True)
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only (ONNX Runtime warns that it cannot constant-fold Mish)
    gen = ort.InferenceSession(str(out / "generator.onnx"), options, providers=["CPUExecutionProvider"])
    ctl = ort.InferenceSession(str(out / "controller.onnx"), options, providers=["CPUExecutionProvider"])
    feeds = {"noise": noise.numpy(), "obs_history": history.numpy(), "task": task.numpy()}
    gen_inputs = {i.name for i in gen.get_inputs()}
    theta_ort = gen.run(None, {n: v for n, v in feeds.items() if n in gen_inputs})[0]
    action_ort = ctl.run(None, {"theta": theta.numpy(), "obs": obs.numpy()})[0]
    errors = {"generator_max_abs_error": float(np.abs(theta_ort - theta.numpy()).max()),
              "controller_max_abs_error": float(np.abs(action_ort - action.numpy()).max()),
              "action_scale": float(np.abs(action.numpy()).max()), "inference_steps": steps}
    # Relative to the size of the outputs: actions are in the env's units (PushT: pixels).
    if (errors["generator_max_abs_error"] > tolerance * max(1.0, float(theta.abs().max()))
            or errors["controller_max_abs_error"] > tolerance * max(1.0, errors["action_scale"])):
        raise ValueError(f"the ONNX graphs differ from torch by more than {tolerance} (relative): {errors}")
    (out / "onnx.json").write_text(json.dumps({**errors, "generator_inputs": sorted(gen_inputs), "sampler": "ddim"}, indent=2))
    return errors
