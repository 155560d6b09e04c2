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
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lwd import numpy_controller
from lwd.checkpoint import file_sha256, load_model
from lwd.data.keys import ACTION, OBS
from lwd.optional import require

FORMATS = ("npz", "onnx", "c")  # c: lwd.export_c (dependency-free C99 controller)
#: The files each format writes into the export folder (ONNX may add external-data files beside them).
FILES = {"npz": ("controller.json", "controller.npz", "lwd_controller.py"),
         "onnx": ("controller.onnx", "generator.onnx", "generator.onnx.data", "controller.onnx.data", "onnx.json"),
         "c": ("lwd_controller.h", "lwd_controller.c", "Makefile", "c.json")}


def _write_export(out: str | Path, fmt: str, overwrite: bool, write: Callable[[Path], Any]) -> Any:
    """Run `write(tmp)` in a hidden folder inside `out`, then move its files into `out`.

    The other format's files may share the folder (`lwd eval --exported` reads both), so the
    target is this format's files: refused when any exists unless `overwrite`. Nothing of a
    failed export (a full disk, a bad graph) is left: the old files stay as they were, and a
    folder created for it is removed again."""
    out = Path(out)
    existing = [name for name in FILES[fmt] if (out / name).exists()]
    if existing and not overwrite:
        raise FileExistsError(f"--out {out} already holds {', '.join(existing)}; pass --overwrite to replace them, "
                              "or choose another --out")
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out, prefix=f".export-{fmt}-"))
    try:
        result = write(tmp)
        for stale in FILES[fmt]:  # files of an earlier export this one does not write (e.g. external data)
            if (out / stale).exists() and not (tmp / stale).exists():
                (out / stale).unlink()
        for written in sorted(tmp.iterdir()):
            os.replace(written, out / written.name)
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()


def _run_identity(run_dir: str | Path) -> str:
    """The content hash of a run's weights: an exported file records it, and loading compares it."""
    return file_sha256(Path(run_dir) / "model.safetensors")


def _check_generates(model: Any, run_dir: str | Path) -> None:
    if getattr(model, "target", None) is None or not hasattr(model, "generate_policy"):
        raise ValueError(f"{run_dir} holds a {model.name} run; only methods that generate policy weights (lwd) export a controller")


def export_controller(run_dir: str | Path, out: str | Path, overwrite: bool = False) -> Path:
    """Write the controller of a trained LWD run to folder `out`; returns it.

    controller.json records the SHA-256 of the run's weights and of the other two files, so a
    file from another run or export is refused when the folder is loaded."""
    model = load_model(run_dir)
    _check_generates(model, run_dir)
    out = Path(out)
    _write_export(out, "npz", overwrite, lambda tmp: _write_controller(model, run_dir, tmp))
    return out


def _write_controller(model: Any, run_dir: str | Path, out: Path) -> None:
    target = model.target
    obs_scale, obs_shift = model.normalizer.affine(OBS)
    action_scale, action_shift = model.normalizer.affine(ACTION, inverse=True)
    spec = {"format": numpy_controller.FORMAT, "version": numpy_controller.VERSION, "method": model.name,
            "obs_dim": model.info.obs_dim, "action_dim": model.info.action_dim, "policy_obs_steps": model.cfg.policy_obs_steps,
            "layer_sizes": target.layer_sizes, "activation": target.activation, "num_params": target.num_params,
            "layout": "layer by layer: weight (in, out) row-major, then bias (out,); normalised obs in, normalised action out",
            "trained_on": model.info.suite or model.info.dataset}
    np.savez(out / "controller.npz", obs_scale=np.asarray(obs_scale, np.float64), obs_shift=np.asarray(obs_shift, np.float64),
             action_scale=np.asarray(action_scale, np.float64), action_shift=np.asarray(action_shift, np.float64))
    shutil.copyfile(numpy_controller.__file__, out / "lwd_controller.py")
    spec["run_model_sha256"] = _run_identity(run_dir)
    spec["sha256"] = {name: file_sha256(out / name) for name in ("controller.npz", "lwd_controller.py")}
    (out / "controller.json").write_text(json.dumps(spec, indent=2))


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
    """Initial latent noise (1, Dz) + raw observation history (1, To, Do) + task id (1,)
    [+ step noise (S, 1, Dz) when the run samples with ddim_eta > 0] -> theta (1, P).

    The DDIM chain is unrolled over the sampler's fixed timesteps, through the library's own
    scheduler step, so the graph computes what `LWD.generate_policy` computes for that noise
    (which draws the initial noise, then one (1, Dz) standard normal per step, in that order)."""

    def __init__(self, model: Any, steps: int) -> None:
        super().__init__()
        self.model = model
        self.scheduler = model.samplers.get("ddim", steps)
        self.timesteps = [int(k) for k in self.scheduler.timesteps]
        scale, shift = model.normalizer.affine(OBS)
        self.register_buffer("obs_scale", torch.as_tensor(np.asarray(scale, np.float32)))
        self.register_buffer("obs_shift", torch.as_tensor(np.asarray(shift, np.float32)))

    def forward(self, noise: torch.Tensor, obs_history: torch.Tensor, task: torch.Tensor,
                step_noise: torch.Tensor | None = None) -> torch.Tensor:
        model = self.model
        hist = obs_history * self.obs_scale + self.obs_shift
        cond = model.condition(task if model.cfg.uses_task else None, hist if model.cfg.uses_state else None)
        eta = getattr(model.cfg, "ddim_eta", 0.0)
        z = noise
        for i, k in enumerate(self.timesteps):
            eps = model.prior(z, torch.full((1,), k, dtype=torch.long), cond)
            if eta > 0:
                z = self.scheduler.step(eps, k, z, eta=eta, variance_noise=step_noise[i]).prev_sample
            else:
                z = self.scheduler.step(eps, k, z).prev_sample
        return model.vae.decoder(z * model.latent_std + model.latent_mean)


def export_onnx(run_dir: str | Path, out: str | Path, inference_steps: int | None = None, tolerance: float = 1e-4,
                overwrite: bool = False) -> dict[str, Any]:
    """controller.onnx and generator.onnx (DDIM, `inference_steps` or the run's), each checked
    against torch with ONNX Runtime on random inputs; returns the largest differences. onnx.json
    records the SHA-256 of the run's weights and of every graph file (see `export_controller`)."""
    require("onnxruntime", "export")
    require("onnxscript", "export")

    model = load_model(run_dir)
    _check_generates(model, run_dir)
    return _write_export(out, "onnx", overwrite, lambda tmp: _write_onnx(model, run_dir, tmp, inference_steps, tolerance))


def _write_onnx(model: Any, run_dir: str | Path, out: Path, inference_steps: int | None, tolerance: float) -> dict[str, Any]:
    import onnxruntime as ort

    steps = inference_steps or model.cfg.inference_steps
    rng = np.random.default_rng(0)
    k, dims = model.cfg.policy_obs_steps, model.info.obs_dim
    low, high = (np.asarray(a, np.float32) for a in model.normalizer.unnormalize(OBS, np.stack([-np.ones(dims), np.ones(dims)])))
    history = torch.as_tensor(rng.uniform(low, high, (1, model.cfg.obs_steps, dims)).astype(np.float32))
    task = torch.zeros(1, dtype=torch.long)
    noise = torch.as_tensor(rng.normal(size=(1, model.cfg.latent_dim)).astype(np.float32))
    stochastic = getattr(model.cfg, "ddim_eta", 0.0) > 0
    step_noise = torch.as_tensor(rng.normal(size=(steps, 1, model.cfg.latent_dim)).astype(np.float32))
    generator = _GeneratorGraph(model, steps).eval()
    controller = _ControllerGraph(model).eval()
    gen_args = (noise, history, task, step_noise) if stochastic else (noise, history, task)
    gen_names = ["noise", "obs_history", "task", "step_noise"][: len(gen_args)]
    with torch.no_grad():
        theta = generator(*gen_args)
        obs = history[:, -k:].reshape(1, k * dims)
        action = controller(theta, obs)
        torch.onnx.export(generator, gen_args, out / "generator.onnx", input_names=gen_names,
                          output_names=["theta"], dynamo=True)
        torch.onnx.export(controller, (theta, obs), out / "controller.onnx", input_names=["theta", "obs"],
                          output_names=["action"], dynamo=True)
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only (ONNX Runtime warns that it cannot constant-fold Mish)
    gen = ort.InferenceSession(str(out / "generator.onnx"), options, providers=["CPUExecutionProvider"])
    ctl = ort.InferenceSession(str(out / "controller.onnx"), options, providers=["CPUExecutionProvider"])
    feeds = {"noise": noise.numpy(), "obs_history": history.numpy(), "task": task.numpy(), "step_noise": step_noise.numpy()}
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
    hashes = {p.name: file_sha256(p) for p in sorted(out.iterdir()) if p.is_file()}
    (out / "onnx.json").write_text(json.dumps({**errors, "generator_inputs": sorted(gen_inputs), "sampler": "ddim",
                                               "run_model_sha256": _run_identity(run_dir), "sha256": hashes}, indent=2))
    return errors
