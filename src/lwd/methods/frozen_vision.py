"""Frozen camera encoders for methods that act on image features: LWD and BC on image data.

LWD's vision variant (the paper's, with frozen encoders): each camera's frame becomes a feature
vector through an image encoder (:class:`lwd.methods.vision.ImageEncoder`, Diffusion Policy's
ResNet-18 / GroupNorm / spatial softmax), and a control step's input is the *step vector*

    [low-dim obs (Do), camera features (n_cams x F, in the order of DataInfo.images)]

which the prior conditions on (its To-step history) and the generated MLP acts on (its last k),
exactly as they use the low-dim observation alone on state data.

Why frozen: the encoder then never changes while the VAE and the prior (or BC's MLP) train, so
every frame of a dataset is embedded once (batched, centre crop, with a progress bar) and those
stages train on feature vectors, as cheaply as on states. What it costs: no random-crop
augmentation downstream, and features that cannot adapt to the downstream objective. At run time
the encoder runs at every control step (a new frame each step), so it is part of every step's
cost (`FrozenVision.step_flops`), not only of generation.

Where the encoder comes from (`encoder_from`, a setting of the method):

- "" (the default): trained here first, as the run's own first stage "encoder": behaviour cloning
  of the demonstrated action from [proprioception, features of the current frame(s)] through the
  encoder and a small MLP head (`HEAD_HIDDEN`, discarded afterwards but kept in the weights file),
  random crops as Diffusion Policy trains its encoder, `encoder_steps` steps of `encoder_batch_size`
  frames; then frozen (its averaged weights). Why this default: it needs nothing but the demos the
  run trains on (no pretrained weights can be downloaded here, and a default naming another run
  would not be self-contained); it is the cheapest objective that makes features carry what the
  actions depend on (about 0.25 s a step at width 16 and batch 32 on one CPU thread, i.e. minutes,
  against hours for the downstream stages at image resolution); and it is honest for a comparison:
  the encoder sees exactly the demos every arm sees, and its training is part of the run's time.
  Its initial weights, batches and crops depend on the training seed and these settings only, so
  LWD and BC with the same settings and seed freeze bit-identical encoders: a study's arms share
  one encoder without sharing files.
- a run directory: the camera encoders of a trained image run (Diffusion Policy `dp`, or an lwd /
  bc run with frozen features), loaded from its model.safetensors. Its image settings (crop_shape,
  image_width, image_keypoints, camera_features, image_pool) and frame shapes must be this run's.
- a .safetensors file: your own weights, laid out as `ImageEncoder.state_dict()` names them, under
  "<image key>." per camera (or with no prefix when there is one camera; "encoders.<image key>."
  as Diffusion Policy runs store them).

Features are min-max normalised like observations, with statistics fitted on the training frames'
features and kept as buffers of this module (`feature_min`, `feature_max`), so a run directory
carries them in model.safetensors; `step_normalizer` joins them to the observation normaliser.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lwd.data import Episodes, MinMaxNormalizer, SegmentDataset, WindowSpec
from lwd.data.keys import ACTION, ACTIONS, OBS, OBS_HISTORY, image_history_key
from lwd.flops import count_flops, num_params
from lwd.methods.base import Stage
from lwd.methods.vision import ImageEncoder

HEAD_HIDDEN = (256, 256)
"""Hidden widths of the MLP head that trains the encoder by behaviour cloning ("encoder" stage)."""
EMBED_BATCH = 256
"""Frames embedded per forward pass when a dataset's features are computed."""
IMAGE_SETTINGS = ("crop_shape", "image_width", "image_keypoints", "camera_features", "image_pool")
"""The config fields that fix an encoder's architecture (the same names in dp, lwd and bc configs)."""


def check_image_settings(owner: str, cfg: Any) -> None:
    """Validate the image fields every config with frozen features has (`owner`: the class name)."""
    if len(cfg.crop_shape) != 2 or min(cfg.crop_shape) < 1:
        raise ValueError(f"{owner}.crop_shape must be [height, width] in pixels, e.g. [84, 84]; got {cfg.crop_shape!r}")
    if cfg.image_width < 16 or cfg.image_width % 16:
        raise ValueError(f"{owner}.image_width must be a multiple of 16 (GroupNorm groups of 16 channels), got {cfg.image_width}")
    for name in ("image_keypoints", "camera_features", "image_pool", "encoder_steps", "encoder_batch_size"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{owner}.{name} must be >= 1, got {getattr(cfg, name)}")
    if cfg.encoder_lr <= 0:
        raise ValueError(f"{owner}.encoder_lr must be > 0, got {cfg.encoder_lr}")


class FrozenVision(nn.Module):
    """One frozen ImageEncoder per camera, the feature normaliser, and the head of the encoder's own training.

    `cfg` is the owning method's config (its `crop_shape`, `image_width`, `image_keypoints`,
    `camera_features`, `encoder_from`, `encoder_steps`, `encoder_batch_size`, `encoder_lr`)."""

    def __init__(self, images: tuple[tuple[str, tuple[int, int, int]], ...], cfg: Any, low_dim: int, action_dim: int) -> None:
        super().__init__()
        if not images:
            raise ValueError("FrozenVision needs at least one camera (DataInfo.images)")
        self.cfg = cfg
        self.image_keys = tuple(key for key, _ in images)
        self.low_dim = low_dim
        self.encoders = nn.ModuleDict({
            key: ImageEncoder(tuple(shape), cfg.crop_shape, cfg.image_width, cfg.image_keypoints, cfg.camera_features,
                                cfg.image_pool)
            for key, shape in images
        })
        self.feature_dim = len(images) * cfg.camera_features
        """Features of one step, all cameras: n_cams x F."""
        self.step_dim = low_dim + self.feature_dim
        """A step vector: [low-dim obs, features]."""
        sizes = [self.step_dim, *HEAD_HIDDEN, action_dim]
        layers: list[nn.Module] = []
        for i, o in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(i, o), nn.ReLU()]
        self.head = nn.Sequential(*layers[:-1])
        self.register_buffer("feature_min", torch.zeros(self.feature_dim))
        self.register_buffer("feature_max", torch.zeros(self.feature_dim))
        self.freeze()
        self._embedded: tuple[Any, str, Episodes] | None = None  # (source episodes, weights digest, features)
        self._step_normalizer: tuple[Any, tuple, MinMaxNormalizer] | None = None

    # ----------------------------------------------------------------- the encoder
    def freeze(self) -> None:
        """No gradient reaches the encoders or the head (only the "encoder" stage trains them)."""
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, frames: dict[str, torch.Tensor]) -> torch.Tensor:
        """{key: (..., H, W, 3) uint8} -> raw features (..., n_cams * F), cameras in order.

        The crop is random while the module is training and central in eval mode (ImageEncoder)."""
        missing = [key for key in self.image_keys if key not in frames]
        if missing:
            raise ValueError(f"this model reads camera frames {list(self.image_keys)}: pass {missing}")
        return torch.cat([self.encoders[key](frames[key]) for key in self.image_keys], dim=-1)

    @torch.no_grad()
    def features(self, frames: dict[str, np.ndarray]) -> np.ndarray:
        """One step's frames {key: (H, W, 3) uint8} -> raw features (n_cams * F,) float32, evaluation crop."""
        was = self.training
        self.eval()
        try:
            batch = {key: torch.from_numpy(np.ascontiguousarray(frames[key], np.uint8))[None] for key in self.image_keys
                     if key in frames}
            return self(batch)[0].numpy().astype(np.float32)
        finally:
            self.train(was)

    def weights_digest(self) -> str:
        """SHA-256 of the encoders' weights: which encoder a feature cache was made with."""
        digest = hashlib.sha256()
        for name, value in self.encoders.state_dict().items():
            digest.update(name.encode())
            digest.update(value.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()

    # ----------------------------------------------------------------- features of a dataset
    @torch.no_grad()
    def embed(self, episodes: Episodes, progress: bool | None = None) -> np.ndarray:
        """Raw features of every step of `episodes`: (N, n_cams * F) float32, in `EMBED_BATCH`-frame
        passes (frames are read block by block, never all at once), evaluation crop."""
        from tqdm.auto import tqdm

        was = self.training
        self.eval()
        device = self.feature_min.device
        out = np.empty((episodes.num_steps, self.feature_dim), np.float32)
        try:
            bar = tqdm(total=episodes.num_steps, desc="embed frames (frozen encoder)", unit="frame",
                       disable=None if progress is None else not progress)
            for start in range(0, episodes.num_steps, EMBED_BATCH):
                stop = min(start + EMBED_BATCH, episodes.num_steps)
                batch = {key: torch.from_numpy(episodes.frames[key][start:stop]).to(device) for key in self.image_keys}
                out[start:stop] = self(batch).float().cpu().numpy()
                bar.update(stop - start)
            bar.close()
        finally:
            self.train(was)
        return out

    def feature_episodes(self, episodes: Episodes, progress: bool | None = None) -> Episodes:
        """`episodes` with "obs" replaced by raw step vectors [obs, features] (N, Do + n_cams * F) and no
        frames: what the downstream stages train on. Computed once per dataset and encoder (kept in
        memory for the last dataset asked for: the training set, whose features every stage reuses)."""
        missing = [key for key in self.image_keys if key not in episodes.frames]
        if missing:
            raise ValueError(f"this model reads camera frames {list(self.image_keys)} but the episodes have "
                             f"{episodes.image_keys or 'none (state-only data)'}")
        digest = self.weights_digest()
        if self._embedded is not None and self._embedded[0] is episodes and self._embedded[1] == digest:
            return self._embedded[2]
        steps = np.concatenate([np.asarray(episodes.data[OBS], np.float32), self.embed(episodes, progress)], axis=1)
        data = {key: value for key, value in episodes.data.items() if key != OBS}
        embedded = Episodes(data={OBS: steps, **data}, episode_ends=episodes.episode_ends, attrs=dict(episodes.attrs))
        self._embedded = (episodes, digest, embedded)
        return embedded

    def fit_feature_stats(self, step_vectors: np.ndarray) -> None:
        """Min-max statistics of the feature part of (N, Do + F) step vectors (the training set's)."""
        features = torch.as_tensor(np.asarray(step_vectors)[:, self.low_dim:], dtype=torch.float32)
        self.feature_min.copy_(features.min(0).values)
        self.feature_max.copy_(features.max(0).values)

    def step_normalizer(self, normalizer: MinMaxNormalizer) -> MinMaxNormalizer:
        """The observation normaliser extended to step vectors: "obs" covers [obs, features] (the
        features' fitted range), "action" as before."""
        key = (tuple(self.feature_min.tolist()), tuple(self.feature_max.tolist()))
        if self._step_normalizer is None or self._step_normalizer[0] is not normalizer or self._step_normalizer[1] != key:
            mins = {OBS: np.concatenate([normalizer.min(OBS), self.feature_min.cpu().numpy()]), ACTION: normalizer.min(ACTION)}
            maxs = {OBS: np.concatenate([normalizer.max(OBS), self.feature_max.cpu().numpy()]), ACTION: normalizer.max(ACTION)}
            self._step_normalizer = (normalizer, key, MinMaxNormalizer(mins, maxs))
        return self._step_normalizer[2]

    # ----------------------------------------------------------------- where the weights come from
    def stages(self, train_cfg: Any, episodes: Episodes, normalizer: MinMaxNormalizer) -> list[Stage]:
        """Before the method's own stages: load the encoder (`encoder_from`), or the "encoder" stage
        that trains it by behaviour cloning. Frames and windows are checked now, before training."""
        if self.cfg.encoder_from:
            self.load_encoders(self.cfg.encoder_from)
            return []
        return [self.encoder_stage(train_cfg, episodes, normalizer)]

    def encoder_stage(self, train_cfg: Any, episodes: Episodes, normalizer: MinMaxNormalizer) -> Stage:
        """The "encoder" stage: BC of a_t from [obs_t, features(frame_t)], normalised, random crops.

        Seeded by the training seed alone (initial weights set here; each step's batch and crops from
        a stream of its own, indexed by the step, so a resumed stage draws what it would have)."""
        cfg = self.cfg
        spec = WindowSpec(obs_steps=1, action_steps=1, with_states=False, image_keys=self.image_keys)
        dataset = SegmentDataset(episodes, spec, normalizer).to(self.feature_min.device)
        seed = int(train_cfg.seed)
        state = {"step": 0}
        # Initial weights from the seed alone, set now (before a resumed run restores its saved ones).
        with torch.random.fork_rng(devices=[]):  # the method's other weights and torch's stream are untouched
            torch.manual_seed(seed)
            for key in self.image_keys:
                fresh = ImageEncoder(self.encoders[key].frame_shape, cfg.crop_shape, cfg.image_width,
                                     cfg.image_keypoints, cfg.camera_features, cfg.image_pool)
                self.encoders[key].load_state_dict(fresh.state_dict())
            for layer in self.head:
                if isinstance(layer, nn.Linear):
                    layer.reset_parameters()

        def prepare() -> None:
            for p in self.parameters():
                p.requires_grad_(True)

        def on_step(step: int) -> None:
            state["step"] = step

        def sample(rng: np.random.Generator) -> dict[str, torch.Tensor]:
            del rng  # the stage's own stream: the same batches whichever method trains the encoder
            own = np.random.default_rng([seed, 104729, state["step"]])
            return dataset.sample_batch(own.integers(len(dataset), size=cfg.encoder_batch_size))

        def loss(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            generator = torch.Generator().manual_seed(seed * 1_000_003 + state["step"])  # the crops of this step
            frames = [self.encoders[key](batch[image_history_key(key)][:, 0], generator) for key in self.image_keys]
            x = torch.cat([batch[OBS_HISTORY][:, 0], *frames], dim=-1)  # (B, Do + n_cams * F)
            value = F.mse_loss(self.head(x), batch[ACTIONS][:, 0])
            return value, {"bc_mse": value.detach()}

        return Stage("encoder", cfg.encoder_steps, self, sample, loss, lr=cfg.encoder_lr, prepare=prepare,
                     batch_size=cfg.encoder_batch_size, on_step=on_step)

    def load_encoders(self, source: str) -> None:
        """The encoders' weights from a run directory or a .safetensors file (see the module docstring)."""
        path = Path(source)
        if path.is_dir():
            raw = _read_json(path / "config.json", source)
            self._check_source_run(path, raw)
            tensors = _read_tensors(path / "model.safetensors", source)
            prefixes = ("encoders.{key}.", "vision.encoders.{key}.")
        elif path.is_file() and path.suffix == ".safetensors":
            tensors = _read_tensors(path, source)
            prefixes = ("{key}.", "encoders.{key}.", "vision.encoders.{key}.") + (("",) if len(self.image_keys) == 1 else ())
        else:
            raise ValueError(f"encoder_from={source!r} is neither a run directory nor a .safetensors file; give a trained "
                             "image run (e.g. lwd train dp --preset image-cpu) or your encoder's weights")
        for key in self.image_keys:
            prefix = next((p.format(key=key) for p in prefixes
                           if any(name.startswith(p.format(key=key) + "backbone.") for name in tensors)), None)
            if prefix is None:
                raise ValueError(f"encoder_from={source!r} holds no encoder for camera '{key}' (looked for "
                                 f"{', '.join(repr(p.format(key=key) + 'backbone...') for p in prefixes)})")
            state = {name[len(prefix):]: value for name, value in tensors.items() if name.startswith(prefix)
                     and name[len(prefix):].split(".")[0] in ("backbone", "keypoints", "project")}
            self._check_shapes(source, key, state)
            self.encoders[key].load_state_dict(state)
        self.freeze()

    def _check_source_run(self, path: Path, raw: dict[str, Any]) -> None:
        """A source run's frames and image settings must be this model's (one line naming the fix)."""
        settings = raw.get("method_config", {}) if isinstance(raw, dict) else {}
        if not any(name in settings for name in IMAGE_SETTINGS):
            raise ValueError(f"encoder_from={str(path)!r}: that run has no image encoder settings ({raw.get('method')} "
                             "without camera frames?); give a run trained on image data")
        # an image run from before a setting existed has no entry for it: it behaved as the setting's legacy value
        later = {f.name: _jsonable(f.metadata.get("legacy", f.default)) for f in dataclasses.fields(self.cfg)
                 if f.metadata.get("added_later")}
        theirs = {name: settings.get(name, later.get(name)) for name in IMAGE_SETTINGS}
        ours = {name: _jsonable(getattr(self.cfg, name)) for name in IMAGE_SETTINGS}
        if theirs != ours:
            fix = " ".join(f"{n}={_compact(theirs[n])}" for n in IMAGE_SETTINGS if theirs[n] != ours[n])
            raise ValueError(f"encoder_from={str(path)!r} has another encoder than these settings; add --set {fix}")
        images = {key: tuple(shape) for key, shape in (raw.get("data", {}).get("images") or [])}
        for key, encoder in self.encoders.items():
            if images.get(key) != encoder.frame_shape:
                raise ValueError(f"encoder_from={str(path)!r} read frames {images or 'none'}, but this data has "
                                 f"'{key}' frames of {encoder.frame_shape}")

    def _check_shapes(self, source: str, key: str, state: dict[str, torch.Tensor]) -> None:
        """The weights fit this architecture, else one line with the settings that would fit them."""
        expected = self.encoders[key].state_dict()
        if set(state) == set(expected) and all(state[n].shape == expected[n].shape for n in expected):
            return
        try:
            found = {"image_width": int(state["backbone.stem.0.weight"].shape[0]),
                     "image_keypoints": int(state["keypoints.conv.weight"].shape[0]),
                     "camera_features": int(state["project.weight"].shape[0])}
        except KeyError as missing:
            raise ValueError(f"encoder_from={source!r}: camera '{key}' weights lack {missing}; they are not an "
                             "ImageEncoder's (lwd.methods.vision)") from None
        fix = " ".join(f"{n}={v}" for n, v in found.items() if getattr(self.cfg, n) != v)
        hint = f"add --set {fix}" if fix else "the layers differ from ImageEncoder's (lwd.methods.vision)"
        raise ValueError(f"encoder_from={source!r}: camera '{key}' weights do not fit this encoder; {hint}")

    # ----------------------------------------------------------------- cost
    def step_flops(self) -> int:
        """FLOPs of one control step's encoding: one frame per camera, evaluation crop."""
        frames = {key: torch.zeros(1, *enc.frame_shape, dtype=torch.uint8) for key, enc in self.encoders.items()}
        was = self.training
        self.eval()
        try:
            return count_flops(lambda: self(frames))
        finally:
            self.train(was)

    def encoder_params(self) -> int:
        return num_params(self.encoders)


def _jsonable(value: Any) -> Any:
    """A setting as config.json stores it (tuples become lists)."""
    return list(value) if isinstance(value, tuple) else value


def _read_json(path: Path, source: str) -> dict[str, Any]:
    import json

    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"encoder_from={source!r}: {path} is not a readable run config ({err}); give a trained run") from err
    if not isinstance(raw, dict):
        raise ValueError(f"encoder_from={source!r}: {path} does not describe a run")
    return raw


def _read_tensors(path: Path, source: str) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"encoder_from={source!r}: {path} is not a readable safetensors file ({err})") from err


def _compact(value: Any) -> str:
    """A setting as --set takes it: [84,84] for a list."""
    return f"[{','.join(str(v) for v in value)}]" if isinstance(value, (list, tuple)) else str(value)


def lazy(build: Any) -> Any:
    """`build()` computed on the first call and returned on every later one (stages build their data
    when they start: the features exist only once the encoder is trained)."""
    cache: list[Any] = []

    def get() -> Any:
        if not cache:
            cache.append(build())
        return cache[0]

    return get
