"""Shared configs and the one way to read them: typed dataclasses, checked where they are parsed.

Each config is a frozen dataclass. `from_dict` refuses unknown keys (a typo in a preset or a
hand-edited config.json is an error, not a silently ignored setting) and checks every value
against its field's type (`horizon="abc"` or `horizon=8.5` is refused with a message naming the
field), then `__post_init__` checks the values themselves. A method's own config lives in its
folder (`lwd/methods/<name>/config.py`); the ones here are shared by every method.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field, fields
from typing import Any, Callable, TypeVar

T = TypeVar("T")


def is_multitask(tasks: tuple[str, ...] | list[str]) -> bool:
    """The one rule for "does this data/benchmark have several tasks": more than one task name.

    Models give a task input (one-hot or embedding) only to multitask data; single-task data may
    still name its one task (e.g. ``("pusht",)``)."""
    return len(tasks) > 1


def to_dict(cfg: Any) -> dict[str, Any]:
    """A config as plain JSON values (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


#: Field metadata for a setting added after results were keyed by their configs: at its default
#: it leaves `key_dict` (and so every existing study cell's key) unchanged.
ADDED_LATER = {"added_later": True}


def added_with_new_default(legacy: Any) -> dict[str, Any]:
    """Field metadata for a setting added later whose default is *not* how older runs behaved: older
    runs behaved as `legacy`. A saved config without the field is read as `legacy` (`from_dict(...,
    saved=True)`), and `key_dict` leaves the field out at `legacy`, so every existing run and study
    cell keeps its behaviour and key, while new configs get the new default (and new keys)."""
    return {"added_later": True, "legacy": legacy}


def key_dict(cfg: Any) -> dict[str, Any]:
    """`to_dict` for cache keys: settings added later are left out while at the value older runs
    had (their legacy value, else their default), so a run trained before they existed keeps its key."""
    values = to_dict(cfg)
    for f in fields(cfg):
        if f.metadata.get("added_later") and getattr(cfg, f.name) == f.metadata.get("legacy", f.default):
            values.pop(f.name)
    return values


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """`value` as type `tp` (int, float, str, bool, tuples of those, X | None), or a ValueError."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, where)
            except ValueError as err:
                errors.append(str(err))
        raise ValueError(errors[0] if errors else f"{where} got {value!r}")
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where} must be a list of values, e.g. [128, 128]; got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], where) for v in value)
        if len(value) != len(args):
            raise ValueError(f"{where} must hold {len(args)} values, got {len(value)}: {value!r}")
        return tuple(_coerce(v, a, where) for v, a in zip(value, args))
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"{where} must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ValueError(f"{where} must be an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
        raise ValueError(f"{where} must be a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ValueError(f"{where} must be a string, got {value!r}")
    return value  # other annotations (nested configs) are checked by their own from_dict


def field_types(cls: type) -> dict[str, Any]:
    """Resolved annotations of a dataclass (the classes use `from __future__ import annotations`)."""
    return typing.get_type_hints(cls)


def from_dict(cls: type[T], data: dict[str, Any], saved: bool = False) -> T:
    """Build config `cls` from JSON-like values, refusing unknown keys and values of the wrong type.

    saved: the values come from a saved run (config.json), so a setting added later with a new
    default (`added_with_new_default`) that the file lacks takes the value older runs had."""
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__} must be a JSON object of settings, got {data!r}")
    if saved:
        legacy = {f.name: f.metadata["legacy"] for f in fields(cls) if "legacy" in f.metadata}  # type: ignore[arg-type]
        data = {**{k: v for k, v in legacy.items() if k not in data}, **data}
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {unknown}; known keys: {sorted(known)}")
    types_ = field_types(cls)
    kwargs = {name: _coerce(value, types_[name], f"{cls.__name__}.{name}") for name, value in data.items()}
    return cls(**kwargs)  # type: ignore[call-arg]


def parse_overrides(cls: type, overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """`key=value` strings (from `--set`) -> {key: value}; values parsed as JSON where possible."""
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    changes: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key=value")
        key, raw = item.split("=", 1)
        if key not in names:
            raise ValueError(f"unknown setting {key!r}; known: {sorted(names)}")
        try:
            changes[key] = json.loads(raw)
        except json.JSONDecodeError:
            changes[key] = raw
    return changes


def apply_overrides(cfg: T, overrides: list[str] | tuple[str, ...]) -> T:
    """A new config with `key=value` overrides applied, each type-checked like a config file."""
    changes = parse_overrides(type(cfg), overrides)
    return from_dict(type(cfg), {**dataclasses.asdict(cfg), **changes})  # type: ignore[arg-type]


def check_positive(cls_name: str, **values: float) -> None:
    for name, value in values.items():
        if value <= 0:
            raise ValueError(f"{cls_name}.{name} must be > 0, got {value}")


@dataclass(frozen=True)
class TrainConfig:
    """How to optimise (shared by every method). Step counts are per training stage."""

    seed: int = 0
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-6
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 200
    ema_power: float = 0.75
    ema_max_decay: float = 0.999
    checkpoint_every: int = 1000
    val_fraction: float = 0.0
    num_threads: int = 0
    """torch threads; 0 keeps torch's default."""
    short_episodes: str = "pad"
    """Episodes shorter than a method's window of H actions: "pad" (masked, as Diffusion Policy's
    sampler pads; real data such as PushT has episodes shorter than long horizons), "drop", or "error"."""

    def __post_init__(self) -> None:
        check_positive("TrainConfig", batch_size=self.batch_size, lr=self.lr, checkpoint_every=self.checkpoint_every)
        if self.short_episodes not in ("pad", "drop", "error"):
            raise ValueError(f"TrainConfig.short_episodes must be pad, drop or error, got {self.short_episodes!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"TrainConfig.val_fraction must be in [0, 1), got {self.val_fraction}")
        if not 0.0 <= self.ema_max_decay < 1.0:
            raise ValueError(f"TrainConfig.ema_max_decay must be in [0, 1), got {self.ema_max_decay}")


@dataclass(frozen=True)
class DataInfo:
    """What the model was trained on; checked against environments and datasets at load time."""

    obs_dim: int
    action_dim: int
    tasks: tuple[str, ...] = ()
    suite: str = ""
    dataset: str = ""
    num_episodes: int = 0
    images: tuple[tuple[str, tuple[int, int, int]], ...] = field(default=(), metadata=ADDED_LATER)
    """Camera frames the model reads, in the order it encodes them: (image key, (H, W, 3)) each,
    e.g. (("image", (96, 96, 3)),). Empty for a model that reads only the low-dim "obs" (then
    config.json has no "images" entry, as before frames existed); evaluation refuses a suite
    whose frames differ."""
    styles: tuple[str, ...] = field(default=(), metadata=ADDED_LATER)
    """Names of the expert styles the data's per-step "style" ids index (attrs["styles"] of `lwd
    demos --styles`), recorded only for a model that conditions on them (LWD's style_condition), so
    that a style can be asked for by name at run time; empty otherwise (config.json then has no
    "styles" entry, as before styles existed)."""

    def __post_init__(self) -> None:
        for key, shape in self.images:
            if not key or len(shape) != 3 or shape[2] != 3 or min(shape) < 1:
                raise ValueError(f"DataInfo.images: ({key!r}, {shape}) must name an image key and its (H, W, 3) frame shape")
        if len(set(self.styles)) != len(self.styles) or not all(self.styles):
            raise ValueError(f"DataInfo.styles must be distinct non-empty names, got {list(self.styles)}")

    @property
    def image_shapes(self) -> dict[str, tuple[int, int, int]]:
        """image key -> (H, W, 3), in the model's order."""
        return {key: tuple(shape) for key, shape in self.images}  # type: ignore[misc]

    @property
    def num_tasks(self) -> int:
        return len(self.tasks)

    @property
    def multitask(self) -> bool:
        return is_multitask(self.tasks)

    @property
    def task_inputs(self) -> int:
        """Task ids a model takes as input: the number of tasks for multitask data, else 0."""
        return self.num_tasks if self.multitask else 0


@dataclass(frozen=True)
class RunConfig:
    """Everything needed to rebuild a trained method; config.json is its JSON form.

    Held typed (the method's config dataclass, TrainConfig, DataInfo) and serialised only at the
    edge (`to_json` / `from_json`), so runs compare as dataclasses.
    """

    method: str
    method_config: Any
    train: TrainConfig
    data: DataInfo
    preset: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "method_config": to_dict(self.method_config), "train": to_dict(self.train),
                "data": key_dict(self.data), "preset": self.preset}

    @classmethod
    def from_json(cls, raw: Any, config_class: Callable[[str], type]) -> "RunConfig":
        """Parse config.json; `config_class(method)` gives the method's config class.

        Runs written before the method folders carry an always-empty "extra" entry; it is accepted
        and dropped."""
        if not isinstance(raw, dict):
            raise ValueError(f"a run config must be a JSON object, got {type(raw).__name__}")
        raw = dict(raw)
        extra = raw.pop("extra", {})
        if extra:
            raise ValueError(f"unknown run config entry 'extra': {extra!r}")
        missing = sorted({"method", "method_config", "train", "data"} - set(raw))
        unknown = sorted(set(raw) - {"method", "method_config", "train", "data", "preset"})
        if missing or unknown:
            raise ValueError(f"a run config needs method, method_config, train and data; missing {missing}, unknown {unknown}")
        method = _coerce(raw["method"], str, "RunConfig.method")
        return cls(
            method=method,
            method_config=from_dict(config_class(method), raw["method_config"], saved=True),
            train=from_dict(TrainConfig, raw["train"]),
            data=from_dict(DataInfo, raw["data"]),
            preset=_coerce(raw.get("preset", ""), str, "RunConfig.preset"),
        )
