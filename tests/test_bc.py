"""Plain BC baseline: with obs_steps=2 the MLP sees the previous observation too (velocity)."""

from __future__ import annotations

import numpy as np

from lwd.config import DataInfo
from lwd.methods.bc import BCConfig
from lwd.data import MinMaxNormalizer
from lwd.methods.bc import BC


def _bc(obs_steps: int) -> BC:
    normalizer = MinMaxNormalizer({"obs": -np.ones(3), "action": -np.ones(2)}, {"obs": np.ones(3), "action": np.ones(2)})
    return BC(BCConfig(hidden=(16,), obs_steps=obs_steps, steps=1), DataInfo(3, 2), normalizer).eval()


def test_history_policy_depends_on_the_previous_observation_and_pads_the_first():
    model = _bc(obs_steps=2)
    a, b = model.make_policy(), model.make_policy()
    a.reset(0), b.reset(0)
    first = np.array([0.1, 0.2, 0.3], np.float32)
    # The first step sees [o0, o0]: the same as feeding o0 twice to the network.
    import torch

    expect = model(torch.from_numpy(np.concatenate([first, first]))[None])[0].detach().numpy()
    np.testing.assert_allclose(model.normalizer.normalize("action", a.act(first)), expect, atol=1e-6)
    b.act(-first)
    now = np.array([0.5, 0.5, 0.5], np.float32)
    assert not np.allclose(a.act(now), b.act(now)), "the previous observation must matter"


def test_history_adds_input_flops_only_at_the_first_layer():
    one, two = _bc(1).cost().to_dict(), _bc(2).cost().to_dict()
    assert two["flops_per_step"] - one["flops_per_step"] == 2 * 3 * 16  # 3 more inputs x 16 units, 2 FLOPs per MAC
