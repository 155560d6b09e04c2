"""`lwd export RUN --format npz|c|... --out DIR`: a run of a method that generates policy weights,
for a robot without torch.

The formats every such method has need only its generated MLP's shape (`WeightGenerator.target`)
and the normalisers:

npz: the generated MLP's description (`controller.json`), its normalisers (`controller.npz`) and
the standalone NumPy runner (`lwd_controller.py`, a copy of `lwd.deploy.numpy_controller`); the weights
come from the generator at run time (`Controller.set_weights`).
c: the same control step as dependency-free C99 (`lwd.deploy.export_c`).

A method adds its own formats through `WeightGenerator.exporters()` (LWD: onnx, its generator and
controller as ONNX graphs). A run of a method that generates no weights is refused by the contract.
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

from lwd.checkpoint import file_sha256, load_model
from lwd.data.keys import ACTION, OBS
from lwd.deploy import numpy_controller
from lwd.deploy.export_c import write_c
from lwd.methods.base import Exporter, WeightGenerator, weight_generator_of

#: The files each shared format writes into the export folder (a method's own formats list theirs).
FILES = {"npz": ("controller.json", "controller.npz", "lwd_controller.py"),
         "c": ("lwd_controller.h", "lwd_controller.c", "Makefile", "c.json")}


def formats(generator: WeightGenerator) -> dict[str, Exporter]:
    """The export formats of a run: npz, the method's own (`WeightGenerator.exporters`), c.

    A run that reads camera frames exports controllers that take step vectors [obs, image features]:
    their summaries say so and name the format that exports the encoder making the features."""
    frames = ""
    if generator.frame_encoder is not None:
        obs_dim = generator.method.info.obs_dim
        frames = (f"; it takes [obs ({obs_dim}), image features ({generator.input_dim - obs_dim})] per step: "
                  "the features come from the image encoder, exported by --format encoder")
    npz = Exporter(FILES["npz"], lambda run_dir, folder: _write_controller(generator, run_dir, folder) or {},
                   lambda _, out: f"wrote {out}/controller.json, controller.npz and lwd_controller.py (NumPy only){frames}")
    c = Exporter(FILES["c"], lambda run_dir, folder: write_c(generator, run_dir, folder),
                 lambda _, out: f"wrote {out}/lwd_controller.h, lwd_controller.c, Makefile and c.json (C99; build: make -C {out}){frames}")
    own = {name: exporter for name, exporter in generator.exporters().items() if name not in FILES}
    return {"npz": npz, **own, "c": c}


def export_run(run_dir: str | Path, fmt: str, out: str | Path, overwrite: bool = False, **options: Any) -> tuple[Any, str]:
    """Export a trained run in format `fmt` into folder `out`: (the format's figures, the line to print).

    `options` go to the format's writer (e.g. onnx: inference_steps, tolerance)."""
    model = load_model(run_dir)
    table = formats(weight_generator_of(model))
    if fmt not in table:
        unknown = f"{model.name} has no format {fmt!r}; " if fmt else ""
        raise ValueError(f"export a run with: lwd export RUN --format {'|'.join(table)} --out DIR "
                         f"({unknown}datasets: lwd export robomimic|lerobot DATA --out ...)")
    exporter = table[fmt]
    result = _write_export(out, exporter.files, overwrite, lambda tmp: exporter.write(run_dir, tmp, **options))
    return result, exporter.summary(result, Path(out))


def export_controller(run_dir: str | Path, out: str | Path, overwrite: bool = False) -> Path:
    """Write the NumPy controller of a trained run to folder `out`; returns it.

    controller.json records the SHA-256 of the run's weights and of the other two files, so a
    file from another run or export is refused when the folder is loaded."""
    export_run(run_dir, "npz", out, overwrite)
    return Path(out)


def export_onnx(run_dir: str | Path, out: str | Path, inference_steps: int | None = None, tolerance: float = 1e-4,
                overwrite: bool = False) -> dict[str, Any]:
    """The run's own ONNX format (LWD: controller.onnx and generator.onnx, DDIM with `inference_steps`
    or the run's, each checked against torch with ONNX Runtime); returns the largest differences."""
    return export_run(run_dir, "onnx", out, overwrite, inference_steps=inference_steps, tolerance=tolerance)[0]


def export_c(run_dir: str | Path, out: str | Path, overwrite: bool = False) -> Path:
    """Write the C controller of a trained run into folder `out` (`lwd.deploy.export_c`); returns it."""
    export_run(run_dir, "c", out, overwrite)
    return Path(out)


def _write_export(out: str | Path, files: tuple[str, ...], overwrite: bool, write: Callable[[Path], Any]) -> Any:
    """Run `write(tmp)` in a hidden folder inside `out`, then move its files into `out`.

    The other format's files may share the folder (`lwd eval --exported` reads both), so the
    target is this format's files: refused when any exists unless `overwrite`. Nothing of a
    failed export (a full disk, a bad graph) is left: the old files stay as they were, and a
    folder created for it is removed again."""
    out = Path(out)
    existing = [name for name in files if (out / name).exists()]
    if existing and not overwrite:
        raise FileExistsError(f"--out {out} already holds {', '.join(existing)}; pass --overwrite to replace them, "
                              "or choose another --out")
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out, prefix=".export-"))
    try:
        result = write(tmp)
        for stale in files:  # files of an earlier export this one does not write (e.g. external data)
            if (out / stale).exists() and not (tmp / stale).exists():
                (out / stale).unlink()
        for written in sorted(tmp.iterdir()):
            os.replace(written, out / written.name)
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()


def step_vector_layout(generator: WeightGenerator) -> str:
    """What a controller's "obs" holds for a run that reads camera frames, in words."""
    obs_dim = generator.method.info.obs_dim
    cameras = ", ".join(f"'{key}'" for key, _ in generator.method.info.images)
    return (f"[obs ({obs_dim}), image features ({generator.input_dim - obs_dim}: cameras {cameras}, from encoder.onnx, "
            "lwd export RUN --format encoder)], raw")


def _run_identity(run_dir: str | Path) -> str:
    """The content hash of a run's weights: an exported file records it, and loading compares it."""
    return file_sha256(Path(run_dir) / "model.safetensors")


def _write_controller(generator: WeightGenerator, run_dir: str | Path, out: Path) -> None:
    model, target = generator.method, generator.target
    obs_scale, obs_shift = generator.input_normalizer.affine(OBS)
    action_scale, action_shift = generator.input_normalizer.affine(ACTION, inverse=True)
    spec = {"format": numpy_controller.FORMAT, "version": numpy_controller.VERSION, "method": model.name,
            "obs_dim": generator.input_dim, "action_dim": model.info.action_dim, "policy_obs_steps": generator.policy_obs_steps,
            "layer_sizes": target.layer_sizes, "activation": target.activation, "num_params": target.num_params,
            "layout": "layer by layer: weight (in, out) row-major, then bias (out,); normalised obs in, normalised action out",
            "trained_on": model.info.suite or model.info.dataset}
    if generator.frame_encoder is not None:  # "obs" is the step vector
        spec["obs"] = step_vector_layout(generator)
    np.savez(out / "controller.npz", obs_scale=np.asarray(obs_scale, np.float64), obs_shift=np.asarray(obs_shift, np.float64),
             action_scale=np.asarray(action_scale, np.float64), action_shift=np.asarray(action_shift, np.float64))
    shutil.copyfile(numpy_controller.__file__, out / "lwd_controller.py")
    spec["run_model_sha256"] = _run_identity(run_dir)
    spec["sha256"] = {name: file_sha256(out / name) for name in ("controller.npz", "lwd_controller.py")}
    (out / "controller.json").write_text(json.dumps(spec, indent=2))


