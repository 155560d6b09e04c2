"""Specification of the episode store (lwd.data.episodes)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import zarr

from lwd.data import DatasetError, Episodes, concatenate


def make_episode_list(lengths, obs_dim=3, action_dim=2, tasks=None, seed=0):
    rng = np.random.default_rng(seed)
    episodes = []
    for i, length in enumerate(lengths):
        episode = {
            "obs": rng.normal(size=(length, obs_dim)).astype(np.float32),
            "action": rng.uniform(-1, 1, size=(length, action_dim)).astype(np.float32),
        }
        if tasks is not None:
            episode["task"] = np.full(length, tasks[i], dtype=np.int64)
        episodes.append(episode)
    return episodes


def make_episodes(lengths=(4, 2, 3), **kwargs) -> Episodes:
    return Episodes.from_list(make_episode_list(lengths, **kwargs), attrs={"env": "toy", "tasks": ["a", "b"]})


def raw(obs, action, ends, **extra) -> dict:
    """Arguments for the Episodes constructor, used to build malformed datasets."""
    return dict(data={"obs": obs, "action": action, **extra}, episode_ends=np.asarray(ends))


# ---------------------------------------------------------------- construction and views


def test_from_list_concatenates_episodes_along_time_and_records_cumulative_ends():
    parts = make_episode_list([4, 2, 3])
    episodes = Episodes.from_list(parts)
    assert episodes.num_episodes == 3
    assert episodes.num_steps == 9
    np.testing.assert_array_equal(episodes.episode_ends, [4, 6, 9])
    np.testing.assert_array_equal(episodes.lengths, [4, 2, 3])
    np.testing.assert_array_equal(episodes.episode_starts, [0, 4, 6])
    np.testing.assert_array_equal(episodes.data["obs"][4:6], parts[1]["obs"])
    assert episodes.episode_ends.dtype == np.int64


def test_episode_returns_views_of_that_episodes_steps():
    parts = make_episode_list([4, 2, 3])
    episodes = Episodes.from_list(parts)
    second = episodes.episode(1)
    np.testing.assert_array_equal(second["action"], parts[1]["action"])
    assert np.shares_memory(second["obs"], episodes.data["obs"])
    np.testing.assert_array_equal(episodes.episode(-1)["obs"], parts[2]["obs"])
    with pytest.raises(IndexError):
        episodes.episode(3)


def test_float_inputs_become_float32_and_scalar_task_is_broadcast_to_int64_steps():
    episodes = Episodes.from_list(
        [
            {"obs": np.zeros((3, 2), np.float64), "action": np.zeros((3, 1), np.float64), "task": 1},
            {"obs": np.zeros((2, 2), np.float64), "action": np.zeros((2, 1), np.float64), "task": 0},
        ]
    )
    assert episodes.data["obs"].dtype == np.float32
    assert episodes.data["action"].dtype == np.float32
    assert episodes.data["task"].dtype == np.int64
    np.testing.assert_array_equal(episodes.data["task"], [1, 1, 1, 0, 0])


# ---------------------------------------------------------------- validation


def test_nan_is_reported_with_key_episode_and_step():
    parts = make_episode_list([4, 3])
    parts[1]["obs"][2, 0] = np.nan
    with pytest.raises(DatasetError, match=r"'obs' contains NaN \(first in episode 1 at step 2\)"):
        Episodes.from_list(parts)


def test_inf_is_reported_with_key_episode_and_step():
    parts = make_episode_list([4, 3])
    parts[0]["action"][3, 1] = np.inf
    with pytest.raises(DatasetError, match=r"'action' contains inf \(first in episode 0 at step 3\)"):
        Episodes.from_list(parts)


def test_key_with_wrong_number_of_steps_names_key_and_both_lengths():
    obs, action = np.zeros((5, 2), np.float32), np.zeros((4, 1), np.float32)
    with pytest.raises(DatasetError, match=r"'action' has 4 steps but episode_ends\[-1\] is 5"):
        Episodes(**raw(obs, action, [2, 5]))


def test_episode_whose_keys_differ_in_length_is_rejected_in_from_list():
    parts = make_episode_list([4, 3])
    parts[1]["action"] = parts[1]["action"][:2]
    with pytest.raises(DatasetError, match=r"episode 1: 'action' has 2 steps but 'obs' has 3"):
        Episodes.from_list(parts)


def test_obs_that_is_not_2d_is_rejected_with_its_shape():
    obs, action = np.zeros((5, 2, 2), np.float32), np.zeros((5, 1), np.float32)
    with pytest.raises(DatasetError, match=r"'obs' must be 2-D \(steps, dims\) but has shape \(5, 2, 2\)"):
        Episodes(**raw(obs, action, [5]))


def test_action_that_is_1d_is_rejected():
    obs, action = np.zeros((5, 2), np.float32), np.zeros(5, np.float32)
    with pytest.raises(DatasetError, match=r"'action' must be 2-D"):
        Episodes(**raw(obs, action, [5]))


def test_empty_episode_is_reported_by_index():
    parts = make_episode_list([4, 0, 3])
    with pytest.raises(DatasetError, match=r"episode 1 is empty \(zero length\)"):
        Episodes.from_list(parts)


def test_decreasing_episode_ends_are_rejected():
    obs, action = np.zeros((5, 2), np.float32), np.zeros((5, 1), np.float32)
    with pytest.raises(DatasetError, match=r"strictly increasing.*episode_ends\[2\]=3 follows 4"):
        Episodes(**raw(obs, action, [2, 4, 3, 5]))


def test_float_episode_ends_are_rejected():
    obs, action = np.zeros((5, 2), np.float32), np.zeros((5, 1), np.float32)
    with pytest.raises(DatasetError, match=r"episode_ends must be integers"):
        Episodes(**raw(obs, action, [2.0, 5.0]))


def test_empty_dataset_is_rejected():
    obs, action = np.zeros((0, 2), np.float32), np.zeros((0, 1), np.float32)
    with pytest.raises(DatasetError, match=r"empty dataset"):
        Episodes(**raw(obs, action, np.zeros(0, np.int64)))
    with pytest.raises(DatasetError, match=r"empty list"):
        Episodes.from_list([])


def test_missing_required_key_names_the_keys_present():
    expected = r"required key 'action' is missing; the dataset has keys \['obs', 'reward'\]"
    with pytest.raises(DatasetError, match=expected):
        Episodes(data={"obs": np.zeros((3, 2)), "reward": np.zeros(3)}, episode_ends=np.array([3]))


def test_non_numeric_dtype_is_rejected():
    obs, action = np.zeros((3, 2), np.float32), np.zeros((3, 1), np.float32)
    with pytest.raises(DatasetError, match=r"'language' has unsupported dtype <U2"):
        Episodes(**raw(obs, action, [3], language=np.array(["go", "up", "go"])))


def test_task_must_be_non_negative_integers():
    obs, action = np.zeros((3, 2), np.float32), np.zeros((3, 1), np.float32)
    with pytest.raises(DatasetError, match=r"'task' ids must be >= 0, found -1 at step 2"):
        Episodes(**raw(obs, action, [3], task=np.array([0, 0, -1])))
    with pytest.raises(DatasetError, match=r"'task' must be a 1-D integer array"):
        Episodes(**raw(obs, action, [3], task=np.array([0.0, 0.0, 1.0])))


def test_check_min_length_lists_short_episodes_and_suggests_fixes():
    episodes = make_episodes(lengths=(9, 5, 8, 2))
    with pytest.raises(DatasetError) as info:
        episodes.check_min_length(8, "the action horizon H=8")
    message = str(info.value)
    assert "episode 1 has 5 steps" in message and "episode 3 has 2 steps" in message
    assert "episode 0" not in message and "episode 2" not in message
    assert "the action horizon H=8 needs at least 8" in message
    assert "drop_shorter_than(8)" in message
    episodes.check_min_length(2, "anything")  # all long enough: no error


def test_drop_shorter_than_keeps_only_long_enough_episodes_in_order():
    parts = make_episode_list([9, 5, 8, 2])
    kept = Episodes.from_list(parts).drop_shorter_than(8)
    np.testing.assert_array_equal(kept.lengths, [9, 8])
    np.testing.assert_array_equal(kept.episode(1)["obs"], parts[2]["obs"])
    with pytest.raises(DatasetError, match=r"all 4 episodes are shorter than 10"):
        Episodes.from_list(parts).drop_shorter_than(10)


# ---------------------------------------------------------------- subsets


def test_select_returns_episodes_in_the_given_order():
    parts = make_episode_list([4, 2, 3])
    chosen = Episodes.from_list(parts).select([2, 0])
    np.testing.assert_array_equal(chosen.lengths, [3, 4])
    np.testing.assert_array_equal(chosen.episode(0)["obs"], parts[2]["obs"])
    np.testing.assert_array_equal(chosen.episode(1)["action"], parts[0]["action"])


def test_split_is_deterministic_disjoint_and_covers_every_episode():
    lengths = list(range(2, 22))  # 20 episodes, each identifiable by its length
    episodes = make_episodes(lengths=lengths)
    train, val = episodes.split(0.25, seed=3)
    train_again, val_again = episodes.split(0.25, seed=3)
    np.testing.assert_array_equal(train.lengths, train_again.lengths)
    np.testing.assert_array_equal(val.lengths, val_again.lengths)
    assert val.num_episodes == 5 and train.num_episodes == 15
    assert set(train.lengths) | set(val.lengths) == set(lengths)
    assert not set(train.lengths) & set(val.lengths)
    _, val_other_seed = episodes.split(0.25, seed=4)
    assert set(val_other_seed.lengths) != set(val.lengths)


def test_split_is_stratified_by_task_and_keeps_a_training_episode_per_task():
    tasks = [0] * 8 + [1] * 4 + [2] * 1
    episodes = make_episodes(lengths=[3] * len(tasks), tasks=tasks)
    train, val = episodes.split(0.5, seed=0)
    val_tasks = val.episode_tasks()
    assert sorted(val_tasks.tolist()) == [0, 0, 0, 0, 1, 1]
    assert set(train.episode_tasks().tolist()) == {0, 1, 2}


def test_split_with_zero_val_fraction_gives_all_training_and_empty_val():
    episodes = make_episodes()
    train, val = episodes.split(0.0, seed=0)
    assert train.num_episodes == 3
    assert val.num_episodes == 0 and val.num_steps == 0
    assert val.data["obs"].shape == (0, 3)


def test_concatenate_joins_episodes_and_offsets_ends():
    a, b = make_episodes(lengths=(2, 3), seed=0), make_episodes(lengths=(4,), seed=1)
    both = concatenate([a, b])
    np.testing.assert_array_equal(both.episode_ends, [2, 5, 9])
    np.testing.assert_array_equal(both.episode(2)["obs"], b.episode(0)["obs"])
    with pytest.raises(DatasetError, match=r"'obs' has per-step shape \(5,\) in part 1"):
        concatenate([a, make_episodes(lengths=(4,), obs_dim=5)])


# ---------------------------------------------------------------- disk


@pytest.mark.parametrize("name", ["demo.zarr", "demo.zarr.zip"])
def test_save_then_load_round_trips_arrays_episode_ends_and_attrs(tmp_path: Path, name: str):
    episodes = make_episodes(tasks=[1, 0, 1])
    episodes.save(tmp_path / name)
    loaded = Episodes.load(tmp_path / name)
    assert sorted(loaded.keys) == ["action", "obs", "task"]
    for key in episodes.keys:
        np.testing.assert_array_equal(loaded.data[key], episodes.data[key])
        assert loaded.data[key].dtype == episodes.data[key].dtype
    np.testing.assert_array_equal(loaded.episode_ends, episodes.episode_ends)
    assert loaded.attrs == {"env": "toy", "tasks": ["a", "b"]}


def test_saved_directory_has_diffusion_policy_layout_readable_with_plain_zarr(tmp_path: Path):
    episodes = make_episodes()
    episodes.save(tmp_path / "demo.zarr")
    root = zarr.open_group(str(tmp_path / "demo.zarr"), mode="r")
    assert root.metadata.zarr_format == 2
    np.testing.assert_array_equal(root["data/obs"][:], episodes.data["obs"])
    np.testing.assert_array_equal(root["data/action"][:], episodes.data["action"])
    np.testing.assert_array_equal(root["meta/episode_ends"][:], [4, 6, 9])
    assert root.attrs["lwd_format"] == 1 and root.attrs["env"] == "toy"


def test_saved_zip_is_readable_with_a_plain_zarr_zip_store(tmp_path: Path):
    make_episodes().save(tmp_path / "demo.zarr.zip")
    store = zarr.storage.ZipStore(tmp_path / "demo.zarr.zip", mode="r")
    root = zarr.open_group(store=store, mode="r")
    np.testing.assert_array_equal(root["meta/episode_ends"][:], [4, 6, 9])
    assert root["data/obs"].shape == (9, 3)
    store.close()


@pytest.mark.parametrize("name", ["demo.zarr", "demo.zarr.zip"])
def test_save_replaces_an_existing_dataset_and_leaves_no_temporary_files(tmp_path: Path, name: str):
    make_episodes(lengths=(5, 5)).save(tmp_path / name)
    make_episodes(lengths=(2, 3)).save(tmp_path / name)
    np.testing.assert_array_equal(Episodes.load(tmp_path / name).episode_ends, [2, 5])
    assert os.listdir(tmp_path) == [name]


def test_save_rejects_attrs_that_are_not_json(tmp_path: Path):
    episodes = make_episodes()
    episodes.attrs["bad"] = object()
    with pytest.raises(DatasetError, match=r"JSON-serialisable"):
        episodes.save(tmp_path / "demo.zarr")
    assert not any(tmp_path.iterdir())


def write_dp_style_store(path: Path) -> None:
    """A store shaped like Diffusion Policy's pusht_cchi_v7_replay.zarr, written with plain zarr."""
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    data = root.create_group("data")
    data.create_array("state", data=np.arange(10, dtype=np.float64).reshape(5, 2))
    data.create_array("action", data=np.ones((5, 2), np.float64))
    data.create_array("img", data=np.zeros((5, 4, 4, 3), np.float32))
    root.create_group("meta").create_array("episode_ends", data=np.array([2, 5], np.int64))


def test_load_reads_only_requested_keys_renames_them_and_casts_floats_to_float32(tmp_path: Path):
    write_dp_style_store(tmp_path / "pusht.zarr")
    episodes = Episodes.load(tmp_path / "pusht.zarr", keys=["state", "action"], rename={"state": "obs"})
    assert sorted(episodes.keys) == ["action", "obs"]
    assert episodes.data["obs"].dtype == np.float32
    np.testing.assert_array_equal(episodes.data["obs"][4], [8, 9])
    assert episodes.attrs == {}


def test_load_of_unknown_key_lists_available_keys(tmp_path: Path):
    write_dp_style_store(tmp_path / "pusht.zarr")
    expected = r"no data key\(s\) \['reward'\]; available keys are \['action', 'img', 'state'\]"
    with pytest.raises(DatasetError, match=expected):
        Episodes.load(tmp_path / "pusht.zarr", keys=["state", "reward"])


def test_load_of_missing_path_says_it_does_not_exist(tmp_path: Path):
    with pytest.raises(DatasetError, match=r"does not exist"):
        Episodes.load(tmp_path / "nothing.zarr")


def test_load_of_a_plain_directory_or_file_says_it_is_not_a_zarr_store(tmp_path: Path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "notes.zarr.zip").write_text("not a zip")
    with pytest.raises(DatasetError, match=r"is not a zarr store"):
        Episodes.load(tmp_path / "folder")
    with pytest.raises(DatasetError, match=r"is not a zarr store"):
        Episodes.load(tmp_path / "notes.zarr.zip")


def test_load_of_a_zarr_group_without_episode_ends_or_data_says_what_is_missing(tmp_path: Path):
    root = zarr.open_group(str(tmp_path / "no_meta.zarr"), mode="w", zarr_format=2)
    root.create_group("data").create_array("obs", data=np.zeros((3, 2)))
    with pytest.raises(DatasetError, match=r"no 'meta/episode_ends'"):
        Episodes.load(tmp_path / "no_meta.zarr")
    root = zarr.open_group(str(tmp_path / "no_data.zarr"), mode="w", zarr_format=2)
    root.create_group("meta").create_array("episode_ends", data=np.array([3]))
    with pytest.raises(DatasetError, match=r"no 'data' group"):
        Episodes.load(tmp_path / "no_data.zarr")


def test_load_validates_the_data_it_reads(tmp_path: Path):
    root = zarr.open_group(str(tmp_path / "nan.zarr"), mode="w", zarr_format=2)
    data = root.create_group("data")
    data.create_array("obs", data=np.array([[0.0], [np.nan], [1.0]], np.float32))
    data.create_array("action", data=np.zeros((3, 1), np.float32))
    root.create_group("meta").create_array("episode_ends", data=np.array([1, 3]))
    with pytest.raises(DatasetError, match=r"'obs' contains NaN \(first in episode 1 at step 0\)"):
        Episodes.load(tmp_path / "nan.zarr")
