"""Specification of camera frames in the episode store (lwd.data.frames, Episodes.frames, image windows)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr

from lwd.data import DatasetError, Episodes, SegmentDataset, WindowSpec, concatenate
from lwd.data.frames import Frames
from lwd.data.keys import OBS_HISTORY, image_history_key


def image_episodes(lengths=(5, 3, 4), size=(6, 8), seed=0, key="image") -> Episodes:
    """Tiny episodes whose frames encode their global step (pixel [0, 0, 0]) plus random pixels."""
    rng = np.random.default_rng(seed)
    parts, step = [], 0
    for length in lengths:
        frames = rng.integers(0, 256, size=(length, *size, 3), dtype=np.uint8)
        frames[:, 0, 0, 0] = np.arange(step, step + length)
        step += length
        parts.append({"obs": rng.normal(size=(length, 2)).astype(np.float32),
                      "action": rng.normal(size=(length, 2)).astype(np.float32), key: frames})
    return Episodes.from_list(parts, attrs={"suite": "pusht/image"}, image_keys=(key,))


@pytest.mark.parametrize("name", ["demos.zarr", "demos.zarr.zip"])
def test_frames_round_trip_exactly_one_frame_per_chunk_and_listed_in_image_keys(tmp_path, name):
    episodes = image_episodes()
    path = episodes.save(tmp_path / name)
    loaded = Episodes.load(path)
    assert loaded.image_keys == ["image"] and "image" not in loaded.data
    assert not loaded.frames["image"].in_memory  # opened, not read
    np.testing.assert_array_equal(loaded.frames["image"].to_numpy(), episodes.frames["image"].to_numpy())
    assert loaded.frames["image"].to_numpy().dtype == np.uint8
    np.testing.assert_array_equal(loaded.data["obs"], episodes.data["obs"])
    assert loaded.attrs == {"suite": "pusht/image"}  # image_keys is the store's, not a user attribute
    store = zarr.storage.ZipStore(path, mode="r") if name.endswith(".zip") else str(path)
    root = zarr.open_group(store=store, mode="r") if name.endswith(".zip") else zarr.open_group(store, mode="r")
    assert root.attrs["image_keys"] == ["image"]
    assert root["data"]["image"].chunks == (1, 6, 8, 3)


def test_windows_read_only_the_frames_they_use_from_the_store(tmp_path):
    episodes = image_episodes(lengths=(5, 3, 4))
    path = episodes.save(tmp_path / "demos.zarr")
    # Delete every stored frame but those of episode 1 (steps 5..7): a reader that loaded the
    # whole array would now fail or see zeros (zarr's fill value) where frames are missing.
    for chunk in (path / "data" / "image").iterdir():
        if chunk.name[0].isdigit() and not 5 <= int(chunk.name.split(".")[0]) <= 7:
            chunk.unlink()
    loaded = Episodes.load(path)
    dataset = SegmentDataset(loaded, WindowSpec(obs_steps=2, action_steps=2, image_keys=("image",)), short_episodes="pad")
    batch = dataset.sample_batch(np.array([5, 6, 7]))  # anchors in episode 1; the first repeats its first frame
    frames = batch[image_history_key("image")].numpy()  # (B, To, H, W, 3)
    assert frames.shape == (3, 2, 6, 8, 3) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames[:, :, 0, 0, 0], [[5, 5], [5, 6], [6, 7]])
    np.testing.assert_array_equal(frames, episodes.frames["image"][np.array([[5, 5], [5, 6], [6, 7]])])
    assert batch[OBS_HISTORY].shape == (3, 2, 2)
    assert not np.array_equal(loaded.frames["image"][0], episodes.frames["image"][0])  # frame 0 really is gone


def test_state_only_windows_are_unchanged_by_frames():
    episodes = image_episodes()
    spec = WindowSpec(obs_steps=2, action_steps=3)
    with_frames = SegmentDataset(episodes, spec, short_episodes="pad").sample_batch(np.arange(12))
    plain = Episodes(data=episodes.data, episode_ends=episodes.episode_ends)
    without = SegmentDataset(plain, spec, short_episodes="pad").sample_batch(np.arange(12))
    assert with_frames.keys() == without.keys()
    for key in without:
        assert np.array_equal(with_frames[key].numpy(), without[key].numpy())


def test_select_split_and_concatenate_keep_frames_aligned_without_reading_them(tmp_path):
    episodes = Episodes.load(image_episodes().save(tmp_path / "demos.zarr.zip"))
    picked = episodes.select([2, 0])
    assert not picked.frames["image"].in_memory
    np.testing.assert_array_equal(picked.frames["image"][:, 0, 0, 0], [8, 9, 10, 11, 0, 1, 2, 3, 4])
    train, val = episodes.split(0.34, seed=0)
    assert len(train.frames["image"]) == train.num_steps and len(val.frames["image"]) == val.num_steps
    joined = concatenate([picked, image_episodes(lengths=(2,), seed=1)])
    np.testing.assert_array_equal(joined.frames["image"][-2:], image_episodes(lengths=(2,), seed=1).frames["image"][:])
    assert joined.frames["image"][3][0, 0, 0] == 11
    again = Episodes.load(joined.save(tmp_path / "joined.zarr"))
    assert again.frames["image"].equal(joined.frames["image"])


def test_bad_frames_are_refused_with_a_message_that_says_what_to_change():
    good = image_episodes()
    n = good.num_steps
    base = dict(data=good.data, episode_ends=good.episode_ends)
    with pytest.raises(DatasetError, match="uint8 RGB in 0-255"):
        Episodes(**base, frames={"image": np.zeros((n, 6, 8, 3), np.float32)})
    with pytest.raises(DatasetError, match=r"channels last"):
        Episodes(**base, frames={"image": np.zeros((n, 3, 6, 8), np.uint8)})
    with pytest.raises(DatasetError, match=rf"has {n - 1} frames but episode_ends\[-1\] is {n}"):
        Episodes(**base, frames={"image": np.zeros((n - 1, 6, 8, 3), np.uint8)})
    with pytest.raises(DatasetError, match="both a data key and an image key"):
        Episodes(**base, frames={"obs": np.zeros((n, 6, 8, 3), np.uint8)})
    with pytest.raises(DatasetError, match=r"image keys \['camera'\] are not keys"):
        Episodes.from_list([{"obs": np.zeros((2, 1), np.float32), "action": np.zeros((2, 1), np.float32)}],
                           image_keys=("camera",))
    with pytest.raises(DatasetError, match=r"reads frames \['wrist'\] but the episodes have image keys \['image'\]"):
        SegmentDataset(good, WindowSpec(2, 2, image_keys=("wrist",)), short_episodes="pad")


def test_a_store_listing_an_image_key_it_lacks_is_refused(tmp_path):
    path = image_episodes().save(tmp_path / "demos.zarr")
    attrs_file = path / ".zattrs"
    attrs = json.loads(attrs_file.read_text())
    attrs["image_keys"] = ["image", "wrist"]
    attrs_file.write_text(json.dumps(attrs))
    with pytest.raises(DatasetError, match=r"lists image key\(s\) \['wrist'\]"):
        Episodes.load(path)


def test_saving_over_the_store_the_frames_are_read_from_is_refused(tmp_path):
    path = image_episodes().save(tmp_path / "demos.zarr")
    loaded = Episodes.load(path)
    with pytest.raises(DatasetError, match="frames of 'image' are read from that store"):
        loaded.save(path)
    np.testing.assert_array_equal(Episodes.load(path).frames["image"][:], image_episodes().frames["image"][:])


def test_frames_index_like_numpy_and_read_repeated_rows_once():
    reads = []

    class Counting(np.ndarray):
        def __getitem__(self, index):
            reads.append(index)
            return np.asarray(self).__getitem__(index)

    raw = np.random.default_rng(0).integers(0, 256, (10, 2, 2, 3), dtype=np.uint8)
    frames = Frames(raw.view(Counting), key="image")
    np.testing.assert_array_equal(frames[np.array([[3, 3], [3, 9]])], raw[np.array([[3, 3], [3, 9]])])
    assert len(reads) == 1 and list(np.asarray(reads[0])) == [3, 9]  # one read of the two distinct rows
    np.testing.assert_array_equal(frames[-1], raw[-1])
    np.testing.assert_array_equal(frames[2:5], raw[2:5])
    with pytest.raises(IndexError):
        frames[np.array([10])]


def test_a_run_config_records_the_image_keys_and_shapes_it_reads_and_state_only_configs_are_unchanged():
    from lwd.config import DataInfo, RunConfig, TrainConfig
    from lwd.methods.dp import DPConfig

    def saved(info: DataInfo) -> dict:
        return RunConfig("dp", DPConfig(), TrainConfig(), info).to_json()["data"]

    state_only = DataInfo(obs_dim=20, action_dim=2)
    assert "images" not in saved(state_only)
    with_image = DataInfo(obs_dim=2, action_dim=2, images=(("image", (96, 96, 3)),))
    raw = json.loads(json.dumps(saved(with_image)))
    assert raw["images"] == [["image", [96, 96, 3]]]
    back = RunConfig.from_json({"method": "dp", "method_config": {}, "train": {}, "data": raw}, lambda _: DPConfig).data
    assert back == with_image and back.image_shapes == {"image": (96, 96, 3)}
    with pytest.raises(ValueError, match=r"\(H, W, 3\) frame shape"):
        DataInfo(obs_dim=2, action_dim=2, images=(("image", (96, 96, 1)),))


def test_the_dataset_hash_covers_frames():
    from lwd.provenance import episodes_hash

    episodes = image_episodes()
    changed = image_episodes()
    changed.frames["image"].sources[0][4, 1, 1, 1] ^= 1
    assert episodes_hash(episodes) != episodes_hash(changed)
    plain = Episodes(data=episodes.data, episode_ends=episodes.episode_ends, attrs=episodes.attrs)
    assert episodes_hash(plain) != episodes_hash(episodes)


def test_diffusion_policys_pusht_zarr_imports_its_frames_as_the_image_key(tmp_path):
    from lwd.data.formats.dp_zarr import load_dp_pusht

    rng = np.random.default_rng(0)
    n, lengths = 7, [3, 4]
    img = rng.integers(0, 256, (n, 96, 96, 3), dtype=np.uint8)
    state = rng.uniform(50, 450, (n, 5)).astype(np.float32)
    action = rng.uniform(0, 512, (n, 2)).astype(np.float32)
    store = zarr.storage.ZipStore(str(tmp_path / "pusht.zarr.zip"), mode="w")
    root = zarr.open_group(store=store, mode="w", zarr_format=2)  # DP's layout: no image_keys attribute
    for key, value in {"state": state, "action": action, "img": img}.items():
        root.require_group("data").create_array(key, shape=value.shape, dtype=value.dtype, chunks=(4, *value.shape[1:]))[...] = value
    root.create_group("meta").create_array("episode_ends", shape=(2,), dtype=np.int64)[...] = np.cumsum(lengths)
    store.close()
    episodes = load_dp_pusht(tmp_path / "pusht.zarr.zip", obs_type="image")
    assert episodes.attrs["suite"] == "pusht/image" and episodes.image_keys == ["image"]
    assert not episodes.frames["image"].in_memory
    np.testing.assert_array_equal(episodes.data["obs"], state[:, :2])
    np.testing.assert_array_equal(episodes.frames["image"][np.array([6, 0])], img[[6, 0]])
