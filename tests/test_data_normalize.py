"""Specification of the min-max normaliser (lwd.data.normalize)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from lwd.data import DatasetError, MinMaxNormalizer


def fitted(seed=0) -> tuple[MinMaxNormalizer, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    data = {
        "obs": rng.uniform(-5, 20, size=(50, 3)).astype(np.float32),
        "action": rng.normal(size=(50, 2)).astype(np.float32),
    }
    return MinMaxNormalizer.fit(data), data


def test_fitted_min_and_max_map_to_minus_one_and_one():
    normalizer, data = fitted()
    obs = data["obs"]
    np.testing.assert_allclose(normalizer.normalize("obs", obs.min(axis=0)), -1, atol=1e-6)
    np.testing.assert_allclose(normalizer.normalize("obs", obs.max(axis=0)), 1, atol=1e-6)
    scaled = normalizer.normalize("action", data["action"])
    assert scaled.min() >= -1 - 1e-6 and scaled.max() <= 1 + 1e-6
    np.testing.assert_allclose(normalizer.min("obs"), obs.min(axis=0))


def test_unnormalize_inverts_normalize_for_numpy_and_torch_of_any_leading_shape():
    normalizer, data = fitted()
    x = data["obs"].reshape(5, 10, 3)  # (B, T, D)
    np.testing.assert_allclose(normalizer.unnormalize("obs", normalizer.normalize("obs", x)), x, rtol=1e-5, atol=1e-5)
    t = torch.from_numpy(data["action"][:6].reshape(2, 3, 2))
    round_trip = normalizer.unnormalize("action", normalizer.normalize("action", t))
    assert isinstance(round_trip, torch.Tensor) and round_trip.dtype == torch.float32
    torch.testing.assert_close(round_trip, t)


def test_numpy_and_torch_give_the_same_values():
    normalizer, data = fitted()
    from_numpy = normalizer.normalize("obs", data["obs"])
    from_torch = normalizer.normalize("obs", torch.from_numpy(data["obs"]))
    assert from_numpy.dtype == np.float32
    np.testing.assert_allclose(from_torch.numpy(), from_numpy, rtol=1e-6, atol=1e-6)


def test_constant_dimension_maps_to_zero_and_unnormalizes_to_the_constant():
    obs = np.stack([np.linspace(0, 1, 10), np.full(10, 7.5), 7.5 + np.linspace(0, 5e-5, 10)], axis=1)
    normalizer = MinMaxNormalizer.fit({"obs": obs.astype(np.float32)}, keys=("obs",))
    scaled = normalizer.normalize("obs", obs.astype(np.float32))
    assert np.isfinite(scaled).all()
    np.testing.assert_array_equal(scaled[:, 1], 0)
    np.testing.assert_allclose(scaled[:, 2], 0, atol=1e-6)  # range 5e-5 < 1e-4 counts as constant
    restored = normalizer.unnormalize("obs", np.array([[0.3, 0.9, -0.4]], np.float32))
    np.testing.assert_allclose(restored[0, 1:], [7.5, 7.5 + 2.5e-5], rtol=1e-6)


def test_state_dict_round_trips_through_safetensors(tmp_path: Path):
    normalizer, data = fitted()
    state = normalizer.state_dict()
    assert sorted(state) == ["action.max", "action.min", "obs.max", "obs.min"]
    assert state["obs.min"].shape == (3,) and state["obs.min"].dtype == torch.float32
    save_file(state, str(tmp_path / "normalizer.safetensors"))
    restored = MinMaxNormalizer.from_state_dict(load_file(str(tmp_path / "normalizer.safetensors")))
    assert sorted(restored.keys) == ["action", "obs"]
    np.testing.assert_array_equal(restored.normalize("obs", data["obs"]), normalizer.normalize("obs", data["obs"]))


def test_input_with_wrong_last_dim_names_both_sizes():
    normalizer = MinMaxNormalizer.fit({"obs": np.zeros((4, 39), np.float32)}, keys=("obs",))
    with pytest.raises(ValueError, match=r"obs has 5 dims but the normaliser was fitted on 39"):
        normalizer.normalize("obs", np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match=r"fitted on 39"):
        normalizer.unnormalize("obs", torch.zeros(5))


def test_unknown_key_names_the_fitted_keys():
    normalizer, _ = fitted()
    with pytest.raises(KeyError, match=r"no statistics for 'reward'"):
        normalizer.normalize("reward", np.zeros((1, 1)))


def test_fit_rejects_nan_and_inf():
    data = {"obs": np.zeros((4, 2), np.float32), "action": np.zeros((4, 1), np.float32)}
    data["obs"][2, 1] = np.nan
    with pytest.raises(DatasetError, match=r"'obs' contains NaN or inf in dims \[1\]"):
        MinMaxNormalizer.fit(data)
    data["obs"][2, 1] = 0
    data["action"][0, 0] = -np.inf
    with pytest.raises(DatasetError, match=r"'action' contains NaN or inf"):
        MinMaxNormalizer.fit(data)


def test_fit_on_missing_key_lists_available_keys():
    with pytest.raises(DatasetError, match=r"cannot fit the normaliser on 'action': data has keys \['obs'\]"):
        MinMaxNormalizer.fit({"obs": np.zeros((3, 2), np.float32)})
