"""Diffusion Policy's PushT replay-buffer zarr: read it into our store, with DP's low-dim observation."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from lwd.data import DatasetError, Episodes
from lwd.data.formats.dp_zarr import load_dp_pusht
from lwd.envs.pusht import block_keypoints, keypoint_obs


def _write_dp_store(path, lengths=(5, 7, 4), seed=0, keypoint_offset=0.0, zip_store=False):
    """A small file in DP's layout (zarr v2; float32 arrays; images that must not be read)."""
    rng = np.random.default_rng(seed)
    n = sum(lengths)
    state = np.column_stack([rng.uniform(50, 450, (n, 4)), rng.uniform(-np.pi, np.pi, n)]).astype(np.float32)
    keypoint = np.stack([block_keypoints(s[2:4], s[4]) for s in state.astype(np.float64)]).astype(np.float32) + keypoint_offset
    action = rng.uniform(0, 512, (n, 2)).astype(np.float32)
    store = zarr.storage.ZipStore(str(path), mode="w") if zip_store else str(path)
    root = zarr.open_group(store=store, mode="w", zarr_format=2)
    data = root.create_group("data")
    for key, value in {"state": state, "keypoint": keypoint, "action": action,
                       "img": np.zeros((n, 4, 4, 3), np.float32), "n_contacts": np.zeros((n, 1), np.float32)}.items():
        data.create_array(key, shape=value.shape, dtype=value.dtype, chunks=value.shape)[...] = value
    meta = root.create_group("meta")
    meta.create_array("episode_ends", shape=(len(lengths),), dtype=np.int64)[...] = np.cumsum(lengths)
    if zip_store:
        store.close()
    return state, keypoint, action


@pytest.mark.parametrize("zip_store", [False, True])
def test_dp_pusht_store_loads_as_dp_low_dim_observation(tmp_path, zip_store):
    path = tmp_path / ("pusht.zarr.zip" if zip_store else "pusht.zarr")
    state, keypoint, action = _write_dp_store(path, zip_store=zip_store)
    episodes = load_dp_pusht(path)
    assert episodes.num_episodes == 3 and list(episodes.lengths) == [5, 7, 4]
    assert set(episodes.data) == {"obs", "action"}, "images and other arrays are not carried"
    obs = episodes.data["obs"]
    assert obs.shape == (16, 20)
    np.testing.assert_array_equal(obs[:, :18], keypoint.reshape(16, 18))
    np.testing.assert_array_equal(obs[:, 18:], state[:, :2])
    np.testing.assert_array_equal(episodes.data["action"], action)
    # Our env computes the same 20 numbers from the state, so evaluation sees what training saw.
    np.testing.assert_allclose(obs, np.stack([keypoint_obs(s) for s in state.astype(np.float64)]), atol=1e-3)
    assert episodes.attrs["suite"] == "pusht"


def test_state_observation_and_round_trip_through_our_store(tmp_path):
    state, _, action = _write_dp_store(tmp_path / "dp.zarr")
    episodes = load_dp_pusht(tmp_path / "dp.zarr", obs_type="state")
    np.testing.assert_array_equal(episodes.data["obs"], state)
    assert episodes.attrs["suite"] == "pusht/state"
    again = Episodes.load(episodes.save(tmp_path / "ours.zarr"))
    np.testing.assert_array_equal(again.data["obs"], state)
    np.testing.assert_array_equal(again.data["action"], action)
    np.testing.assert_array_equal(again.episode_ends, episodes.episode_ends)


def test_keypoints_that_our_env_would_not_produce_are_refused(tmp_path):
    _write_dp_store(tmp_path / "dp.zarr", keypoint_offset=1.5)
    with pytest.raises(DatasetError, match="does not match the keypoints"):
        load_dp_pusht(tmp_path / "dp.zarr")
    assert load_dp_pusht(tmp_path / "dp.zarr", check_keypoints=False).data["obs"].shape == (16, 20)
    assert load_dp_pusht(tmp_path / "dp.zarr", obs_type="state").data["obs"].shape == (16, 5)


def test_malformed_dp_stores_give_clear_errors(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_dp_pusht(tmp_path / "missing.zarr")
    root = zarr.open_group(str(tmp_path / "nokp.zarr"), mode="w", zarr_format=2)
    root.create_group("data").create_array("state", shape=(4, 5), dtype=np.float32)[...] = 1.0
    root["data"].create_array("action", shape=(4, 2), dtype=np.float32)[...] = 1.0
    root.create_group("meta").create_array("episode_ends", shape=(1,), dtype=np.int64)[...] = [4]
    with pytest.raises(DatasetError, match="keypoint"):
        load_dp_pusht(tmp_path / "nokp.zarr")
    root["data"].create_array("keypoint", shape=(4, 8, 2), dtype=np.float32)[...] = 1.0
    with pytest.raises(DatasetError, match=r"\(N, 9, 2\)"):
        load_dp_pusht(tmp_path / "nokp.zarr")
    with pytest.raises(ValueError, match="obs_type"):
        load_dp_pusht(tmp_path / "nokp.zarr", obs_type="pixels")


def test_lwd_import_command_writes_a_store_and_reports_bad_input(tmp_path, capsys):
    from lwd.cli import main

    _write_dp_store(tmp_path / "dp.zarr.zip", zip_store=True)
    assert main(["import", "dp-pusht", str(tmp_path / "dp.zarr.zip"), "--out", str(tmp_path / "ours.zarr")]) == 0
    assert Episodes.load(tmp_path / "ours.zarr").data["obs"].shape == (16, 20)
    (tmp_path / "junk.zarr.zip").write_bytes(b"not a zip")
    assert main(["import", "dp-pusht", str(tmp_path / "junk.zarr.zip"), "--out", str(tmp_path / "x.zarr")]) == 2
    assert "not a zarr store" in capsys.readouterr().err
    assert not (tmp_path / "x.zarr").exists()
