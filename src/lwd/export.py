"""`lwd export RUN --format npz --out DIR`: a trained LWD's controller for a robot without torch.

Writes the generated MLP's description (`controller.json`), its normalisers (`controller.npz`)
and the standalone NumPy runner (`lwd_controller.py`, a copy of `lwd.numpy_controller`). The
weights themselves come from the generator at run time (`Controller.set_weights`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from lwd import numpy_controller
from lwd.checkpoint import load_model
from lwd.data.keys import ACTION, OBS

FORMATS = ("npz",)


def export_controller(run_dir: str | Path, out: str | Path) -> Path:
    """Write the controller of a trained LWD run to folder `out`; returns it."""
    model = load_model(run_dir)
    target = getattr(model, "target", None)
    if target is None or not hasattr(model, "generate_policy"):
        raise ValueError(f"{run_dir} holds a {model.name} run; only methods that generate policy weights (lwd) export a controller")
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
