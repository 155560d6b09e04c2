"""A LeRobot-trained LWD policy as an lwd run directory, so lwd's own tools take it
(`lwd eval`, `lwd info`, `lwd export RUN --format npz|onnx|c`).

The weights are the policy's own; the normaliser is lwd's min-max one built from the statistics
LeRobot normalised with (its saved preprocessor's), so the run acts as the LeRobot pipeline
(preprocessor -> select_action -> postprocessor) does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lwd.checkpoint import save_model
from lwd.config import DataInfo, RunConfig, TrainConfig
from lwd.data import MinMaxNormalizer
from lwd.data.keys import ACTION as LWD_ACTION
from lwd.data.keys import OBS
from lwd.methods.base import build_method

from lerobot_policy_lwd.modeling_lwd import LWDPolicy


def normalizer_from_stats(policy: LWDPolicy, stats: dict[str, dict]) -> MinMaxNormalizer:
    """lwd's normaliser of the policy's state features (concatenated in its order) and action."""
    def column(key: str, stat: str) -> np.ndarray:
        return np.asarray(stats[key][stat], np.float64).reshape(-1)

    keys = policy.config.state_keys
    return MinMaxNormalizer({OBS: np.concatenate([column(k, "min") for k in keys]), LWD_ACTION: column("action", "min")},
                            {OBS: np.concatenate([column(k, "max") for k in keys]), LWD_ACTION: column("action", "max")})


def to_lwd_run(policy: LWDPolicy, stats: dict[str, dict], out_dir: str | Path, suite: str = "") -> Path:
    """Write `policy` (weights, settings) with `stats` (LeRobot's min/max) as an lwd run at `out_dir`.

    `suite` (e.g. "pusht") is the lwd benchmark whose environment matches the dataset's
    observations, for `lwd eval`; "" leaves it unset."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    info = DataInfo(obs_dim=policy.model.info.obs_dim, action_dim=policy.model.info.action_dim, suite=suite,
                    dataset="lerobot")
    method = build_method("lwd", policy.config.core_config(), info, normalizer_from_stats(policy, stats))
    method.load_state_dict(policy.model.state_dict())
    save_model(out_dir, method, RunConfig("lwd", method.cfg, TrainConfig(lr=policy.config.optimizer_lr), info,
                                          preset=policy.config.preset))
    return out_dir
