"""LWD's ONNX export (`lwd export RUN --format onnx`): `controller.onnx` (theta and raw stacked
observations in, raw action out: new weights need no re-export) and `generator.onnx` (initial latent
noise, raw observation history and task id in, theta out: DDIM unrolled through the model's own
prior and decoder), each checked against torch with ONNX Runtime. `lwd.deploy.export` runs it through
`LWDWeightGenerator.exporters()`; `lwd.methods.lwd.exported` evaluates a run from these files.

A run trained with style_condition exports its unconditional generator: the prior with the 'no
style' token, what the run samples without --style. The export says so (its line, and "style":
"unconditional" in onnx.json), and `lwd eval --exported` refuses --style.

A run that reads camera frames has step vectors [obs, image features] where a state run has
observations (both graphs take them raw), and one more format, `lwd export RUN --format encoder`:
`encoder.onnx`, its frozen image encoder (one uint8 (1, H, W, 3) frame per camera, named by its
image key, in; the raw features (1, n_cams * F) of the step vector out, evaluation crop), checked
against torch the same way, with `encoder.json` (inputs, output size, errors, hashes)."""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
import torch

from lwd.checkpoint import file_sha256
from lwd.data.keys import ACTION, OBS
from lwd.methods.base import Exporter
from lwd.methods.target_mlp import batched_mlp_forward
from lwd.optional import require

if TYPE_CHECKING:
    from lwd.methods.lwd.model import LWD

FILES = ("controller.onnx", "generator.onnx", "generator.onnx.data", "controller.onnx.data", "onnx.json")
"""What the format writes (ONNX may add the external-data files beside the graphs)."""
ENCODER_FILES = ("encoder.onnx", "encoder.onnx.data", "encoder.json")
"""What the encoder format writes (a run that reads camera frames)."""


def exporter(model: "LWD") -> Exporter:
    """The onnx format of `model`: options inference_steps (default: the run's) and tolerance."""

    def write(run_dir: str | Path, folder: Path, inference_steps: int | None = None, tolerance: float = 1e-4) -> dict[str, Any]:
        require("onnxruntime", "export")
        require("onnxscript", "export")
        return write_onnx(model, run_dir, folder, inference_steps, tolerance)

    def summary(errors: dict[str, Any], out: Path) -> str:
        frames = "; both take step vectors [obs, image features]: export the encoder with --format encoder" \
            if model.vision is not None else ""
        if getattr(model.cfg, "style_condition", False):
            frames += ("; generator.onnx samples without a style (the 'no style' token): a style on request "
                       f"({', '.join(model.info.styles)}) runs in the library only")
        return (f"wrote {out}/controller.onnx and generator.onnx (DDIM, {errors['inference_steps']} steps); "
                f"ONNX Runtime vs torch: theta max abs error {errors['generator_max_abs_error']:.1e}, "
                f"action {errors['controller_max_abs_error']:.1e} (actions up to {errors['action_scale']:.3g}){frames}")

    return Exporter(FILES, write, summary)


def encoder_exporter(model: "LWD") -> Exporter:
    """The encoder format of a model that reads camera frames: option tolerance."""

    def write(run_dir: str | Path, folder: Path, tolerance: float = 1e-4, **_: Any) -> dict[str, Any]:
        require("onnxruntime", "export")
        require("onnxscript", "export")
        return write_encoder_onnx(model, run_dir, folder, tolerance)

    def summary(record: dict[str, Any], out: Path) -> str:
        inputs = ", ".join(f"{key} {tuple(shape)} uint8" for key, shape in record["inputs"].items())
        return (f"wrote {out}/encoder.onnx ({inputs} -> {record['features']} features, the step vector's after obs); "
                f"ONNX Runtime vs torch: max abs error {record['max_abs_error']:.1e} (features up to {record['feature_scale']:.3g})")

    return Exporter(ENCODER_FILES, write, summary)


class _EncoderGraph(torch.nn.Module):
    """One uint8 (1, H, W, 3) frame per camera, in the model's camera order -> raw features (1, n_cams * F)."""

    def __init__(self, model: "LWD") -> None:
        super().__init__()
        self.vision = model.vision
        self.keys = model.vision.image_keys

    def forward(self, *frames: torch.Tensor) -> torch.Tensor:
        return self.vision(dict(zip(self.keys, frames)))


def write_encoder_onnx(model: "LWD", run_dir: str | Path, out: Path, tolerance: float) -> dict[str, Any]:
    import onnxruntime as ort

    vision = model.vision
    if vision is None:
        raise ValueError("this run reads no camera frames: it has no image encoder to export")
    rng = np.random.default_rng(0)
    shapes = dict(model.info.images)
    frames = tuple(torch.as_tensor(rng.integers(0, 256, (1, *shapes[key]), dtype=np.uint8)) for key in vision.image_keys)
    graph = _EncoderGraph(model).eval()
    with torch.no_grad():
        features = graph(*frames)
        with _quiet_exporter():
            torch.onnx.export(graph, frames, out / "encoder.onnx", input_names=list(vision.image_keys),
                              output_names=["features"], dynamo=True, verbose=False)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(out / "encoder.onnx"), options, providers=["CPUExecutionProvider"])
    got = session.run(None, {key: f.numpy() for key, f in zip(vision.image_keys, frames)})[0]
    error, scale = float(np.abs(got - features.numpy()).max()), float(features.abs().max())
    if error > tolerance * max(1.0, scale):
        raise ValueError(f"the encoder's ONNX graph differs from torch by {error:.2e} (more than {tolerance}, relative)")
    hashes = {p.name: file_sha256(p) for p in sorted(out.iterdir()) if p.is_file()}
    record = {"inputs": {key: list(shapes[key]) for key in vision.image_keys}, "features": vision.feature_dim,
              "obs_dim": model.info.obs_dim, "max_abs_error": error, "feature_scale": scale,
              "run_model_sha256": file_sha256(Path(run_dir) / "model.safetensors"), "sha256": hashes}
    (out / "encoder.json").write_text(json.dumps(record, indent=2))
    return record


class _ControllerGraph(torch.nn.Module):
    """theta (1, P) as generated + raw stacked observations (1, k*Do) -> raw action (1, Da)."""

    def __init__(self, model: "LWD") -> None:
        super().__init__()
        k = model.cfg.policy_obs_steps
        obs_scale, obs_shift = model.step_normalizer.affine(OBS)  # step vectors on image data
        act_scale, act_shift = model.step_normalizer.affine(ACTION, inverse=True)
        self.spec = model.target
        for name, value in (("in_scale", np.tile(obs_scale, k)), ("in_shift", np.tile(obs_shift, k)),
                            ("out_scale", act_scale), ("out_shift", act_shift)):
            self.register_buffer(name, torch.as_tensor(np.asarray(value, np.float32)))

    def forward(self, theta: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        x = obs * self.in_scale + self.in_shift
        action = batched_mlp_forward(self.spec, theta, x[:, None])[:, 0]
        return action * self.out_scale + self.out_shift


class _GeneratorGraph(torch.nn.Module):
    """Initial latent noise (1, Dz) + raw observation history (1, To, Do) + task id (1,)
    [+ step noise (S, 1, Dz) when the run samples with ddim_eta > 0] -> theta (1, P).

    The DDIM chain is unrolled over the sampler's fixed timesteps, through the library's own
    scheduler step, so the graph computes what `LWD.generate_policy` computes for that noise
    (which draws the initial noise, then one (1, Dz) standard normal per step, in that order)."""

    def __init__(self, model: "LWD", steps: int) -> None:
        super().__init__()
        self.model = model
        self.scheduler = model.samplers.get("ddim", steps)
        self.timesteps = [int(k) for k in self.scheduler.timesteps]
        scale, shift = model.step_normalizer.affine(OBS)
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


def write_onnx(model: "LWD", run_dir: str | Path, out: Path, inference_steps: int | None, tolerance: float) -> dict[str, Any]:
    import onnxruntime as ort

    steps = inference_steps or model.cfg.inference_steps
    rng = np.random.default_rng(0)
    k, dims = model.cfg.policy_obs_steps, model.step_dim
    low, high = (np.asarray(a, np.float32) for a in model.step_normalizer.unnormalize(OBS, np.stack([-np.ones(dims), np.ones(dims)])))
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
        with _quiet_exporter():
            torch.onnx.export(generator, gen_args, out / "generator.onnx", input_names=gen_names,
                              output_names=["theta"], dynamo=True, verbose=False)
            torch.onnx.export(controller, (theta, obs), out / "controller.onnx", input_names=["theta", "obs"],
                              output_names=["action"], dynamo=True, verbose=False)
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
    style = {"style": "unconditional", "styles": list(model.info.styles)} if getattr(model.cfg, "style_condition", False) else {}
    (out / "onnx.json").write_text(json.dumps({**errors, **style, "generator_inputs": sorted(gen_inputs), "sampler": "ddim",
                                               "run_model_sha256": file_sha256(Path(run_dir) / "model.safetensors"), "sha256": hashes}, indent=2))
    return errors


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """torch.onnx's exporter prints its progress (verbose=False stops that), warns that torchvision's
    operators are skipped (lwd exports none) and passes on a FutureWarning from torch.export: about
    twenty lines per export that say nothing about the result. Errors still raise."""
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        registration.setLevel(level)

