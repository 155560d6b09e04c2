"""Evaluate a trained LWD through its exported files, to check that what ships behaves as what was trained.

`lwd eval RUN --exported DIR` runs every episode with `DIR/generator.onnx` in ONNX Runtime making
the weights and `DIR/lwd_controller.py` (NumPy) running them: the files `lwd export RUN --format
npz` and `--format onnx` write. The initial latent noise of each generation is drawn exactly as
the in-library policy draws it (torch, seeded by the episode), and DDIM with eta = 0 draws nothing
else, so the two evaluations differ only by float rounding between ONNX Runtime and torch and
should give the same success on the same seeds. When DIR also holds `lwd export RUN --format c`,
the compiled C controller (`lwd.deploy.export_c.CController`) runs the steps instead of the NumPy one.
Reached through `LWDWeightGenerator.load_exported` (`lwd.deploy.exported.load_exported`).

A run that reads camera frames also needs `DIR/encoder.onnx` (`lwd export RUN --format encoder`):
every step its frames go through it in ONNX Runtime, and the step vector [obs, features] goes to
the generator's history and the controller, as the in-library policy does with the torch encoder.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from lwd.deploy import numpy_controller
from lwd.deploy.exported import check_hashes, read_json_object
from lwd.methods.base import GenerationRuntime, Policy
from lwd.methods.history import ObsHistory
from lwd.optional import require

if TYPE_CHECKING:
    from lwd.methods.lwd.model import LWD


class ExportedMethod:
    """A loaded LWD whose policies run from the exported files; everything else is the method's.

    Every file is checked before an episode runs: present, of the structure, types and shapes
    `lwd export` writes, finite, and (by the SHA-256 recorded at export) written together from this
    very run. A file that fails names itself in a ValueError, never a traceback."""

    def __init__(self, method: "LWD", folder: str | Path, run_dir: str | Path | None = None) -> None:
        require("onnxruntime", "export")
        import onnxruntime as ort

        folder = Path(folder)
        for name in ("generator.onnx", "controller.json", "controller.npz", "lwd_controller.py", "onnx.json"):
            if not (folder / name).is_file():
                raise FileNotFoundError(f"{folder}/{name} is missing; write the folder with lwd export RUN --format npz "
                                        f"--out {folder} and lwd export RUN --format onnx --out {folder}")
        reference = numpy_controller.Controller.load(folder)  # the library's own checks of json and npz
        if reference.num_params != method.target.num_params or reference.obs_dim != method.step_dim:
            raise ValueError(f"{folder} was exported from another model ({reference.num_params} weights, "
                             f"{reference.obs_dim}-d observations; this run: {method.target.num_params}, {method.step_dim})")
        onnx_info = read_json_object(folder / "onnx.json")
        steps = onnx_info.get("inference_steps")
        if type(steps) is not int or steps < 1:
            raise ValueError(f"{folder}/onnx.json: inference_steps must be a positive integer, got {steps!r}")
        if run_dir is not None:
            check_hashes(folder, run_dir, json.loads((folder / "controller.json").read_text()), onnx_info)
        spec = importlib.util.spec_from_file_location("lwd_controller_exported", folder / "lwd_controller.py")
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        try:
            spec.loader.exec_module(module)  # type: ignore[union-attr]
            self._controller_class = module.Controller
            self._controller_class.load(folder)
        except Exception as err:  # noqa: BLE001  (user-supplied code: whatever it raises is a bad file)
            raise ValueError(f"{folder}/lwd_controller.py does not load the controller ({type(err).__name__}: {err})") from err
        if (folder / "c.json").is_file():  # a C export beside them (--format c): it runs the control steps
            from lwd.deploy.export_c import CController, check_record

            check_record(folder, run_dir, method.target.num_params, method.step_dim)
            try:
                CController.load(folder)  # compiled (cached) now: no compiler or a bad file fails before any episode
            except RuntimeError as err:
                raise ValueError(str(err)) from err
            self._controller_class = CController
        self._folder = folder
        self._method = method
        self.exported_steps = steps
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(folder / "generator.onnx"), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # noqa: BLE001  (ONNX Runtime raises its own exception types)
            raise ValueError(f"{folder}/generator.onnx is not a loadable ONNX graph ({' '.join(str(err).split())[:200]})") from err
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.encoder = _encoder_session(method, folder, run_dir, options) if method.vision is not None else None
        """encoder.onnx in ONNX Runtime, for a run that reads camera frames (else None)."""
        self.sampler_steps = next((int(i.shape[0]) for i in self.session.get_inputs() if i.name == "step_noise"), 0)
        """Steps of a stochastic sampler (ddim_eta > 0) that each take a fresh normal draw; 0: deterministic."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._method, name)

    def make_policy(self, runtime: GenerationRuntime | None = None) -> "ExportedPolicy":
        runtime = runtime or GenerationRuntime()
        sampler, steps = self._method.sampling(runtime)
        if sampler != "ddim" or steps != self.exported_steps:
            raise ValueError(f"{self._folder}/generator.onnx runs DDIM with {self.exported_steps} steps; evaluate with "
                             f"--sampler ddim --inference-steps {self.exported_steps} (asked: {sampler}, {steps} steps)")
        if runtime.generation_delay:
            raise ValueError("--exported does not take --generation-delay")
        if getattr(runtime, "style", None) is not None:
            raise ValueError(f"{self._folder}/generator.onnx samples without a style (the prior's 'no style' token): "
                             "a style on request runs in the library only; drop --exported or --style")
        return ExportedPolicy(self, runtime)


class ExportedPolicy(Policy):
    """One episode: every H steps new weights from generator.onnx, every step the NumPy controller."""

    def __init__(self, exported: ExportedMethod, runtime: GenerationRuntime) -> None:
        super().__init__()
        cfg = exported.cfg
        self.exported = exported
        self.horizon = cfg.horizon if runtime.action_horizon is None else runtime.action_horizon
        self.latent_dim = cfg.latent_dim
        self.controller = exported._controller_class.load(exported._folder)
        self._history = ObsHistory(cfg.obs_steps)
        self._generator = torch.Generator().manual_seed(0)
        self._task = 0
        self._t = 0

    def reset(self, seed: int, task: int | None = None) -> None:
        self._generator = torch.Generator().manual_seed(int(seed))  # as LWDPolicy: the same noise per episode
        self._task = 0 if task is None else int(task)
        self._t = 0
        self._history.clear()
        self.controller.reset()

    def _generate(self) -> None:
        noise = torch.randn(1, self.latent_dim, generator=self._generator).numpy()
        feeds = {"noise": noise, "obs_history": self._history.stacked()[None].astype(np.float32),
                 "task": np.array([self._task], np.int64)}
        if self.exported.sampler_steps:  # a stochastic sampler: one draw per step, after the initial noise
            feeds["step_noise"] = torch.stack([torch.randn(1, self.latent_dim, generator=self._generator)
                                               for _ in range(self.exported.sampler_steps)]).numpy()
        theta = self.exported.session.run(None, {k: v for k, v in feeds.items() if k in self.exported.inputs})[0]
        self.controller.set_weights(theta.reshape(-1))
        self.generations += 1

    def step_vector(self, obs: np.ndarray | dict[str, np.ndarray]) -> np.ndarray:
        """The observation, or for a run that reads camera frames [obs, encoder.onnx features of its frames]."""
        encoder = self.exported.encoder
        if encoder is None:
            return np.array(obs, np.float32)
        if not isinstance(obs, dict):
            raise ValueError("this run reads camera frames: act() takes {'obs': low-dim, <image key>: frame} observations")
        feeds = {i.name: np.ascontiguousarray(obs[i.name], np.uint8)[None] for i in encoder.get_inputs()}
        return np.concatenate([np.asarray(obs["obs"], np.float32), encoder.run(None, feeds)[0][0]]).astype(np.float32)

    def act(self, obs: np.ndarray | dict[str, np.ndarray]) -> np.ndarray:
        obs = self.step_vector(obs)
        self._history.push(obs)
        if self._t == 0 or (self.horizon > 0 and self._t % self.horizon == 0):
            self._generate()
        self._t += 1
        self.steps += 1
        return self.controller.act(obs)


def _encoder_session(method: "LWD", folder: Path, run_dir: str | Path | None, options: Any) -> Any:
    """encoder.onnx of a run that reads camera frames, checked against encoder.json (and the run's weights)."""
    import onnxruntime as ort

    from lwd.checkpoint import file_sha256

    for name in ("encoder.onnx", "encoder.json"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder}/{name} is missing: this run reads camera frames; write the encoder with "
                                    f"lwd export RUN --format encoder --out {folder}")
    record = read_json_object(folder / "encoder.json")
    expected = {key: list(shape) for key, shape in method.info.images}
    if record.get("inputs") != expected or record.get("features") != method.vision.feature_dim:
        raise ValueError(f"{folder}/encoder.json describes another encoder ({record.get('inputs')} -> "
                         f"{record.get('features')} features; this run: {expected} -> {method.vision.feature_dim})")
    hashes = record.get("sha256")
    if not isinstance(hashes, dict) or "encoder.onnx" not in hashes:
        raise ValueError(f"{folder}/encoder.json records no file hashes; export the encoder again with --overwrite")
    if run_dir is not None and record.get("run_model_sha256") != file_sha256(Path(run_dir) / "model.safetensors"):
        raise ValueError(f"{folder}/encoder.json was exported from another run than {run_dir} (its weights differ)")
    for name, digest in hashes.items():
        if not (folder / str(name)).is_file() or file_sha256(folder / str(name)) != digest:
            raise ValueError(f"{folder}/{name} is not the file exported with encoder.json (missing, or its SHA-256 differs)")
    try:
        return ort.InferenceSession(str(folder / "encoder.onnx"), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # noqa: BLE001  (ONNX Runtime raises its own exception types)
        raise ValueError(f"{folder}/encoder.onnx is not a loadable ONNX graph ({' '.join(str(err).split())[:200]})") from err
