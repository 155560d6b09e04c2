"""Checkpoints as JSON + safetensors only (never pickle), written atomically.

A run directory holds:
    config.json              RunConfig: method, its config, training config, data info
    model.safetensors        all weights of the trained method (EMA weights once training ends)
    normalizer.safetensors   min-max statistics fitted on the training split
    train_state/latest.json  -> train_state/step-<stage>-<step>/ (optimizer, EMA, RNG, weights)
Every file is written to a temporary name, flushed to disk and renamed into place, and a training
state becomes visible only when latest.json is replaced, so an interrupted write never leaves a
state that looks complete but is not. Each state records the SHA-256 of its files and the
previous state is kept: a state damaged after it was written (a truncated copy, a bad disk) is
refused on load and the previous good one is used instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from lwd.config import RunConfig
from lwd.data import MinMaxNormalizer
from lwd.methods.base import Method, build_method, get_method
from lwd.outputs import umask_mode


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, or does not match the model it is loaded into."""


def atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, umask_mode())  # mkstemp's 0600 would survive the rename
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)  # a full disk leaves no temp file behind
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_tensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file({k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}, tmp, metadata=metadata)
        _fsync(Path(tmp))
        os.chmod(tmp, umask_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fsync(path: Path) -> None:
    """Flush a written file to disk, so a rename after it cannot expose a file the OS never stored."""
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes (checkpoint states and exported files record it; loading compares)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} is missing")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} is not a readable safetensors file ({err}); the checkpoint is corrupt") from err


def read_json(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} is missing")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path} is not valid JSON ({err}); the checkpoint is corrupt") from err


# ------------------------------------------------------------------------------ methods
def save_model(out_dir: Path, method: Method, run: RunConfig) -> None:
    out_dir = Path(out_dir)
    save_tensors(method.normalizer.state_dict(), out_dir / "normalizer.safetensors")
    save_tensors(method.state_dict(), out_dir / "model.safetensors", metadata={"method": run.method})
    atomic_write_json(out_dir / "config.json", run.to_json())


def parse_run_config(raw: Any, where: str | Path) -> RunConfig:
    """A RunConfig from its JSON form; every problem (unknown method, bad values) is a CheckpointError."""
    try:
        return RunConfig.from_json(raw, lambda name: get_method(name).config_class)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{where} does not describe a valid run: {err}") from err


def read_run_config(ckpt_dir: str | Path) -> RunConfig:
    path = Path(ckpt_dir) / "config.json"
    return parse_run_config(read_json(path), path)


def load_model(ckpt_dir: str | Path) -> Method:
    """Rebuild a trained method from a run directory; every mismatch is a CheckpointError."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        raise CheckpointError(f"{ckpt_dir} is not a run directory")
    run = read_run_config(ckpt_dir)
    normalizer = MinMaxNormalizer.from_state_dict(load_tensors(ckpt_dir / "normalizer.safetensors"))
    try:
        method = build_method(run.method, run.method_config, run.data, normalizer)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{ckpt_dir}/config.json is inconsistent: {err}") from err
    load_state(method, load_tensors(ckpt_dir / "model.safetensors"), ckpt_dir / "model.safetensors")
    return method.eval()


def load_state(module: torch.nn.Module, state: dict[str, torch.Tensor], where: Path | str) -> None:
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{where} does not match the model in config.json: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    for key, value in state.items():
        if value.shape != expected[key].shape:
            raise CheckpointError(
                f"{where}: {key} has shape {tuple(value.shape)} but the model expects {tuple(expected[key].shape)}"
            )
    module.load_state_dict(state)


# ------------------------------------------------------------------------------ training state
def optimizer_to_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state_dict into tensors (safetensors) and plain values (JSON)."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, entry in sd["state"].items():
        for name, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"{idx}.{name}"] = value
            else:
                scalars.setdefault(str(idx), {})[name] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_tensors(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    for idx, entry in meta.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(entry)
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def write_train_state(
    out_dir: Path, stage: int, step: int, files: dict[str, dict[str, torch.Tensor]], info: dict[str, Any], keep: int = 2
) -> Path:
    """Write one complete training state, then point latest.json at it and prune all but `keep`."""
    root = Path(out_dir) / "train_state"
    name = f"step-{stage}-{step:08d}"
    target = root / name
    tmp = Path(tempfile.mkdtemp(dir=root if root.exists() else _mkdir(root), prefix=f".{name}."))
    try:
        checksums = {}
        for fname, tensors in files.items():
            path = tmp / f"{fname}.safetensors"
            save_file({k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}, str(path))
            _fsync(path)
            checksums[path.name] = file_sha256(path)
        (tmp / "state.json").write_text(json.dumps(dict(info, stage=stage, step=step, sha256=checksums)))
        _fsync(tmp / "state.json")
        os.chmod(tmp, umask_mode(executable=True))  # mkdtemp's 0700 would survive the rename
        for written in tmp.iterdir():
            os.chmod(written, umask_mode())
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a full disk leaves no .step-* folder that blocks the next attempt
        raise
    atomic_write_json(root / "latest.json", {"dir": name, "stage": stage, "step": step})
    states = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-"))
    for old in states[:-keep]:
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    return target


def has_train_state(out_dir: Path) -> bool:
    """Whether `out_dir` holds a training state to resume (latest.json or a finished step folder);
    hidden temporary folders of a write that failed do not count."""
    root = Path(out_dir) / "train_state"
    if not root.is_dir():
        return False
    return (root / "latest.json").exists() or any(p.is_dir() and p.name.startswith("step-") for p in root.iterdir())


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _read_state_folder(folder: Path) -> tuple[dict[str, Any], dict[str, dict[str, torch.Tensor]]]:
    """One training state, verified against the checksums it was written with."""
    info = read_json(folder / "state.json")
    for fname, expected in info.get("sha256", {}).items():
        path = folder / fname
        if not path.is_file():
            raise CheckpointError(f"{path} is missing")
        if file_sha256(path) != expected:
            raise CheckpointError(f"{path} does not match the checksum it was written with (truncated or corrupted)")
    files = {p.stem: load_tensors(p) for p in folder.glob("*.safetensors")}
    for needed in ("model", "rng"):
        if needed not in files:
            raise CheckpointError(f"{folder} has no {needed}.safetensors")
    return info, files


def read_train_state(out_dir: Path) -> tuple[dict[str, Any], dict[str, dict[str, torch.Tensor]]] | None:
    """The latest complete and intact training state, or None when the run never saved one.

    latest.json names the newest state; when it (or the state it names) is damaged, older states
    are tried newest first, with a warning, and only when none is intact is that an error."""
    root = Path(out_dir) / "train_state"
    folders = sorted((p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-")), reverse=True) if root.is_dir() else []
    if not (root / "latest.json").exists() and not folders:
        return None
    problems = []
    try:
        latest = read_json(root / "latest.json")
        named = root / latest["dir"]
        folders = [named] + [f for f in folders if f != named]
    except (CheckpointError, KeyError, TypeError) as err:
        problems.append(f"latest.json: {err}")
    for folder in folders:
        try:
            info, files = _read_state_folder(folder)
        except CheckpointError as err:
            problems.append(str(err))
            continue
        if folder.name != f"step-{info.get('stage')}-{int(info.get('step', -1)):08d}":
            problems.append(f"{folder} holds the state of stage {info.get('stage')} step {info.get('step')}")
            continue
        if problems:
            warnings.warn(f"the newest training state in {root} is damaged ({'; '.join(problems)}); "
                          f"resuming from the previous good one, {folder.name}", stacklevel=2)
        return info, files
    raise CheckpointError(f"no intact training state in {root}: {'; '.join(problems)}")
