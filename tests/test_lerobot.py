"""LeRobot v3.0 datasets: written here the way LeRobot 0.4's own writer lays them out (not the way
our reader expects), imported exactly, exported back, with one-line errors for malformed ones."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
pd = pytest.importorskip("pandas")

from lwd.data import DatasetError  # noqa: E402
from lwd.data.formats.lerobot import load_lerobot, save_lerobot  # noqa: E402

DEFAULT_FEATURES = {"timestamp": {"dtype": "float32", "shape": [1], "names": None},
                    **{k: {"dtype": "int64", "shape": [1], "names": None} for k in ("frame_index", "episode_index", "index", "task_index")}}


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def write_lerobot(root: Path, episodes: list[dict], tasks_in_order: list[str], fps: int = 10, frames_per_file: int = 10**9,
                  extra_features: dict | None = None, version: str = "v3.0", drop_frames: int = 0) -> Path:
    """A dataset as LeRobot 0.4 writes one: user features then the default ones in info.json; tasks.parquet
    from a pandas frame whose index is the task string; vector columns as fixed-size lists; episodes
    appended to data files that roll over by size; per-episode metadata (with stats) in meta/episodes."""
    (root / "meta" / "episodes" / "chunk-000").mkdir(parents=True)
    (root / "data" / "chunk-000").mkdir(parents=True)
    state_dim = episodes[0]["state"].shape[1]
    env_dim = episodes[0]["env"].shape[1] if "env" in episodes[0] else 0
    action_dim = episodes[0]["action"].shape[1]
    features = {"observation.state": {"dtype": "float32", "shape": [state_dim], "names": [f"s{i}" for i in range(state_dim)]}}
    if env_dim:
        features["observation.environment_state"] = {"dtype": "float32", "shape": [env_dim], "names": None}
    features["action"] = {"dtype": "float32", "shape": [action_dim], "names": {"motors": [f"m{i}" for i in range(action_dim)]}}
    features.update(extra_features or {})
    features.update(DEFAULT_FEATURES)

    task_index = {t: i for i, t in enumerate(tasks_in_order)}
    pd.DataFrame({"task_index": list(range(len(tasks_in_order)))}, index=tasks_in_order).to_parquet(root / "meta" / "tasks.parquet")

    def fixed(values: np.ndarray) -> pa.Array:
        return pa.array(values.tolist(), type=pa.list_(pa.float32(), values.shape[1]))

    writer, file_index, rows_in_file, index = None, 0, 0, 0
    meta_rows = []
    for e, ep in enumerate(episodes):
        n = len(ep["action"])
        if writer is not None and rows_in_file + n > frames_per_file:
            writer.close()
            writer, file_index, rows_in_file = None, file_index + 1, 0
        columns = {"observation.state": fixed(ep["state"])}
        if env_dim:
            columns["observation.environment_state"] = fixed(ep["env"])
        columns.update({"action": fixed(ep["action"]), "timestamp": pa.array(np.arange(n, dtype=np.float32) / fps),
                        "frame_index": pa.array(np.arange(n, dtype=np.int64)), "episode_index": pa.array(np.full(n, e, np.int64)),
                        "index": pa.array(np.arange(index, index + n, dtype=np.int64)),
                        "task_index": pa.array(np.full(n, task_index[ep["task"]], np.int64))})
        table = pa.table(columns)
        keep = n - drop_frames if e == 0 else n  # a truncated data file, for the row-count check
        if writer is None:
            writer = pq.ParquetWriter(root / "data" / "chunk-000" / f"file-{file_index:03d}.parquet", table.schema, compression="snappy")
        writer.write_table(table.slice(0, keep))
        meta_rows.append({"episode_index": e, "tasks": [ep["task"]], "length": n, "data/chunk_index": 0, "data/file_index": file_index,
                          "dataset_from_index": index, "dataset_to_index": index + n,
                          "stats/action/min": ep["action"].min(0).tolist(), "stats/action/max": ep["action"].max(0).tolist(),
                          "stats/action/count": [n], "meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
        rows_in_file += n
        index += n
    writer.close()
    pq.write_table(pa.Table.from_pylist(meta_rows), root / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
    info = {"codebase_version": version, "robot_type": "so100", "total_episodes": len(episodes), "total_frames": index,
            "total_tasks": len(tasks_in_order), "chunks_size": 1000, "data_files_size_in_mb": 100, "video_files_size_in_mb": 200,
            "fps": fps, "splits": {"train": f"0:{len(episodes)}"},
            "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
            "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4", "features": features}
    (root / "meta" / "info.json").write_text(json.dumps(info, indent=4, ensure_ascii=False))
    return root


def _episodes(rng: np.random.Generator, tasks: list[str], lengths: list[int], env_dim: int = 3) -> list[dict]:
    out = []
    for task, n in zip(tasks, lengths):
        ep = {"state": rng.normal(size=(n, 4)).astype(np.float32), "action": rng.normal(size=(n, 2)).astype(np.float32), "task": task}
        if env_dim:
            ep["env"] = rng.normal(size=(n, env_dim)).astype(np.float32)
        out.append(ep)
    return out


CAMERA = {"observation.images.top": {"dtype": "video", "shape": [96, 96, 3], "names": ["height", "width", "channels"]}}


def test_single_task_import_is_exact(tmp_path):
    eps = _episodes(np.random.default_rng(0), ["pick the cube"] * 3, [7, 5, 9])
    write_lerobot(tmp_path / "ds", eps, ["pick the cube"], frames_per_file=10, extra_features=CAMERA)  # one data file per episode
    assert len(list((tmp_path / "ds" / "data" / "chunk-000").glob("*.parquet"))) == 3
    data = load_lerobot(tmp_path / "ds", image_features=[])  # its camera is declared, with no video files
    obs = np.concatenate([np.concatenate([e["state"], e["env"]], axis=1) for e in eps])  # state then environment_state
    assert _digest(data.data["obs"]) == _digest(obs)
    assert _digest(data.data["action"]) == _digest(np.concatenate([e["action"] for e in eps]))
    assert data.episode_ends.tolist() == [7, 12, 21]
    assert data.attrs["tasks"] == ["pick the cube"] and set(data.data["task"].tolist()) == {0}
    assert data.attrs["state_features"] == ["observation.state", "observation.environment_state"] and data.attrs["fps"] == 10
    only_state = load_lerobot(tmp_path / "ds", state_features=["observation.state"], image_features=[])
    assert _digest(only_state.data["obs"]) == _digest(np.concatenate([e["state"] for e in eps]))


def test_multi_task_import_maps_each_task_string_to_its_id(tmp_path):
    names = ["open the drawer", "push the button", "close the drawer"]  # task_index in order of first appearance
    order = ["open the drawer", "push the button", "open the drawer", "close the drawer", "push the button"]
    eps = _episodes(np.random.default_rng(1), order, [4, 6, 3, 5, 2], env_dim=0)
    write_lerobot(tmp_path / "ds", eps, names)
    data = load_lerobot(tmp_path / "ds")
    assert data.attrs["tasks"] == names
    per_episode = [int(data.data["task"][end - 1]) for end in data.episode_ends]
    assert [data.attrs["tasks"][i] for i in per_episode] == order
    assert data.data["obs"].shape == (20, 4)

    # Export then import gives the same arrays back.
    save_lerobot(data, tmp_path / "again", fps=15)
    back = load_lerobot(tmp_path / "again")
    for key in ("obs", "action", "task"):
        assert _digest(back.data[key]) == _digest(data.data[key])
    assert back.episode_ends.tolist() == data.episode_ends.tolist() and back.attrs["tasks"] == names
    info = json.loads((tmp_path / "again" / "meta" / "info.json").read_text())
    assert (info["codebase_version"], info["fps"], info["total_frames"], info["total_episodes"]) == ("v3.0", 15, 20, 5)
    assert pd.read_parquet(tmp_path / "again" / "meta" / "tasks.parquet").loc["push the button"].task_index == 1  # LeRobot's lookup

    # Task-conditioned LWD trains on it: one task id per task string.
    from lwd.pipeline import train_run

    data.save(tmp_path / "multi.zarr")
    settings = ["vae_steps=2", "prior_steps=2", "horizon=2", "condition=task", "latent_dim=4", "policy_hidden=[8]", "chunk_size=64",
                "hyper_hidden=[8]", "encoder_dim=8", "encoder_heads=2", "denoiser_width=8", "denoiser_blocks=1"]
    model = train_run("lwd", tmp_path / "multi.zarr", tmp_path / "run", overrides=settings, progress=False)
    assert model.info.tasks == tuple(names) and model.prior.task_emb.num_embeddings == 3


@pytest.mark.parametrize("case,message", [
    ("no-info", r"meta/info.json is missing"),
    ("unknown-feature", r"no feature 'observation.joints' in the dataset; available: \['action', 'observation.environment_state', "
                        r"'observation.images.top', 'observation.state'\]"),
    ("image-only", r"image-only dataset: its observations are \['observation.images.top'\]"),
    ("rows", r"the data files hold 4 rows of episode 0 but meta/episodes gives it length 7"),
    ("version", r"codebase_version 'v2.1' is not supported; lwd reads v3.0"),
    ("ragged", r"feature 'observation.state' is ragged"),
])
def test_malformed_datasets_give_one_line_errors(tmp_path, case, message):
    eps = _episodes(np.random.default_rng(2), ["t"] * 2, [7, 5])
    root = tmp_path / "ds"
    features = None
    if case == "image-only":
        write_lerobot(root, eps, ["t"], extra_features=CAMERA)
        info = json.loads((root / "meta" / "info.json").read_text())
        del info["features"]["observation.state"], info["features"]["observation.environment_state"]
        (root / "meta" / "info.json").write_text(json.dumps(info))
    elif case == "ragged":
        write_lerobot(root, eps, ["t"])
        path = root / "data" / "chunk-000" / "file-000.parquet"
        table = pq.read_table(path)
        rows = table.column("observation.state").to_pylist()
        rows[3] = rows[3][:2]  # one frame with 2 values instead of 4
        table = table.set_column(0, "observation.state", pa.array(rows, type=pa.list_(pa.float32())))
        pq.write_table(table, path)
    else:
        write_lerobot(root, eps, ["t"], extra_features=CAMERA, version="v2.1" if case == "version" else "v3.0",
                      drop_frames=3 if case == "rows" else 0)
    if case == "no-info":
        (root / "meta" / "info.json").unlink()
    if case == "unknown-feature":
        features = ["observation.joints"]
    with pytest.raises(DatasetError, match=message):
        load_lerobot(root, state_features=features)


def test_pusht_demos_through_lerobot_train_and_evaluate(tmp_path):
    """Our PushT demos -> lwd export-data lerobot -> lwd import lerobot -> lwd train lwd -> lwd eval, tiny budget."""
    pytest.importorskip("gym_pusht")
    from lwd.cli import main
    from lwd.data import Episodes
    from lwd.demos import collect_demos
    from lwd.pipeline import evaluate_run
    from lwd.suites import make_suite

    demos = collect_demos(make_suite("pusht/state"), 2, progress=False)
    demos.save(tmp_path / "demos.zarr")
    assert main(["export-data", "lerobot", str(tmp_path / "demos.zarr"), "--out", str(tmp_path / "lerobot")]) == 0
    assert main(["import", "lerobot", str(tmp_path / "lerobot"), "--out", str(tmp_path / "back.zarr"), "--suite", "pusht/state"]) == 0
    back = Episodes.load(tmp_path / "back.zarr")
    assert _digest(back.data["obs"]) == _digest(np.asarray(demos.data["obs"], np.float32))
    assert back.attrs["suite"] == "pusht/state"
    settings = ["vae_steps=3", "prior_steps=3", "horizon=4", "condition=state", "latent_dim=4", "policy_hidden=[8]",
                "chunk_size=64", "hyper_hidden=[8]", "encoder_dim=8", "encoder_heads=2", "denoiser_width=8", "denoiser_blocks=1"]
    assert main(["train", "lwd", "--data", str(tmp_path / "back.zarr"), "--out", str(tmp_path / "run"),
                 *[a for s in settings for a in ("--set", s)]]) == 0
    result = evaluate_run(tmp_path / "run", episodes=1, progress=False)
    assert result["suite"] == "pusht/state" and len(result["episodes"]) == 1


def test_export_splits_the_observation_into_lerobots_state_features(tmp_path):
    """LeRobot's PushT layout (agent position as observation.state, the T's keypoints as
    observation.environment_state), which lerobot-eval's pusht env gives a policy; imported back exactly."""
    from lwd.data import Episodes

    rng = np.random.default_rng(0)
    obs, action = rng.normal(size=(12, 18)).astype(np.float32), rng.normal(size=(12, 2)).astype(np.float32)
    eps = Episodes({"obs": obs, "action": action}, np.array([5, 12]))
    split = (("observation.state", 2), ("observation.environment_state", 16))
    save_lerobot(eps, tmp_path / "ds", state_features=split)
    info = json.loads((tmp_path / "ds" / "meta" / "info.json").read_text())
    assert [info["features"][k]["shape"] for k in ("observation.state", "observation.environment_state")] == [[2], [16]]
    stats = json.loads((tmp_path / "ds" / "meta" / "stats.json").read_text())
    assert np.allclose(stats["observation.environment_state"]["max"], obs[:, 2:].max(0))
    back = load_lerobot(tmp_path / "ds")
    assert _digest(back.data["obs"]) == _digest(obs) and back.attrs["state_features"] == [name for name, _ in split]
    with pytest.raises(DatasetError, match="split the 18 observation columns"):
        save_lerobot(eps, tmp_path / "bad", state_features=(("observation.state", 2), ("observation.environment_state", 15)))


def _info_edit(edit):
    def apply(root):
        info = json.loads((root / "meta" / "info.json").read_text())
        (root / "meta" / "info.json").write_text(json.dumps(edit(info)))
    return apply


def _data_edit(edit):
    def apply(root):
        path = root / "data" / "chunk-000" / "file-000.parquet"
        pq.write_table(edit(pq.read_table(path)), path)
    return apply


@pytest.mark.parametrize("case", ["info-list", "info-string", "shape-string", "action-video", "no-index", "index-all-zero",
                                  "state-is-index", "state-twice"])
def test_more_malformed_datasets_name_the_key(tmp_path, case):
    """Cases a sweep of malformed inputs found raising tracebacks, pyarrow schema dumps, or accepted silently."""
    edits = {
        "info-list": (_info_edit(lambda info: [info]), None, r"info.json must hold a JSON object, got list"),
        "info-string": (_info_edit(lambda info: "v3.0"), None, r"info.json must hold a JSON object, got str"),
        "shape-string": (_info_edit(lambda info: {**info, "features": {**info["features"], "action": {"dtype": "float32", "shape": "2"}}}),
                         None, r"features.action.shape must be a list of positive integers, got '2'"),
        "action-video": (_info_edit(lambda info: {**info, "features": {**info["features"], "action": {"dtype": "video", "shape": [2]}}}),
                         None, r"the action feature 'action' is declared 'video'"),
        "no-index": (_data_edit(lambda table: table.drop_columns(["index"])), None, r"file-000.parquet has no column\(s\) \['index'\]"),
        "index-all-zero": (_data_edit(lambda table: table.set_column(table.column_names.index("index"), "index",
                                                                     pa.array(np.zeros(len(table), np.int64)))),
                           None, r"the 'index' column repeats values"),
        "state-is-index": (lambda root: None, ["index"], r"'index' is a bookkeeping column, not a state"),
        "state-twice": (lambda root: None, ["observation.state", "observation.state"], r"names \['observation.state'\] more than once"),
    }
    edit, features, message = edits[case]
    root = tmp_path / "ds"
    write_lerobot(root, _episodes(np.random.default_rng(2), ["t"] * 2, [7, 5]), ["t"])
    edit(root)
    with pytest.raises(DatasetError, match=message):
        load_lerobot(root, state_features=features)


def test_export_names_every_dimension_and_keeps_the_suite_tag(tmp_path):
    from conftest import make_episodes

    eps = make_episodes(num_episodes=2, num_tasks=1)
    eps.attrs["suite"] = "pusht"
    save_lerobot(eps, tmp_path / "ds")
    features = json.loads((tmp_path / "ds" / "meta" / "info.json").read_text())["features"]
    width = eps.data["obs"].shape[1]
    assert features["observation.state"]["names"] == [f"state_{i}" for i in range(width)]
    assert len(features["action"]["names"]) == eps.data["action"].shape[1]
    assert load_lerobot(tmp_path / "ds").attrs["suite"] == "pusht"  # imported back as the suite it came from


def test_camera_frames_round_trip_exactly_as_images_and_within_codec_loss_as_videos(tmp_path):
    """lwd's export writes frames as LeRobot does (PNG structs in the data file, or H.264 mp4s with each
    episode's from/to timestamps in meta/episodes); the import decodes them back to the same steps."""
    pytest.importorskip("gym_pusht")
    pytest.importorskip("imageio_ffmpeg")
    from test_dp_image import tiny_image_demos

    from lwd.data import Episodes

    demos = Episodes.load(tiny_image_demos(tmp_path, episodes=3, steps=9))
    original = demos.frames["image"].to_numpy()
    for storage in ("image", "video"):
        save_lerobot(demos, tmp_path / storage, fps=10, frames=storage)
        info = json.loads((tmp_path / storage / "meta" / "info.json").read_text())
        assert info["features"]["observation.image"]["dtype"] == storage
        assert info["features"]["observation.image"]["shape"] == [96, 96, 3]
        back = load_lerobot(tmp_path / storage)
        assert back.image_keys == ["image"] and back.attrs["suite"] == "pusht/image"
        assert _digest(back.data["obs"]) == _digest(demos.data["obs"]) and np.array_equal(back.episode_ends, demos.episode_ends)
        frames = back.frames["image"].to_numpy()
        if storage == "image":
            assert np.array_equal(frames, original)
        else:
            error = np.abs(frames.astype(np.int16) - original).mean(axis=(1, 2, 3))  # per frame, in 0-255 levels
            assert error.max() < 3.0
            # every frame decoded at its own step: nearer its original than any other step's frame
            distance = np.abs(frames[:, None].astype(np.int16) - original[None]).mean(axis=(2, 3, 4))  # (N, N)
            assert np.array_equal(distance.argmin(1), np.arange(len(original)))
    meta = pq.read_table(tmp_path / "video" / "meta" / "episodes" / "chunk-000" / "file-000.parquet").to_pydict()
    assert meta["videos/observation.image/from_timestamp"] == [0.0, 0.9, 1.8]
    assert load_lerobot(tmp_path / "video", image_features=[]).frames == {}
    with pytest.raises(DatasetError, match=r"--image-features: \['observation.images.wrist'\] is not"):
        load_lerobot(tmp_path / "video", image_features=["observation.images.wrist"])
