"""The contract between a method and the rest of lwd, and the registry of methods.

A method is an `nn.Module` (all learnable state, saved to model.safetensors) that declares, as
class attributes, everything the top floors (train, evaluate, bench, cli) need to know about it:

    @register_method
    class MyMethod(Method):
        name = "mine"                   # `lwd train mine`, config.json's "method"
        config_class = MyConfig         # frozen dataclass of its settings
        runtime_class = RuntimeOptions  # what `lwd eval` may change at run time
        presets = {"default": Preset()}

and implements `stages` (training), `make_policy` (run time) and `cost` (params and FLOPs).
A method that generates the weights of a small MLP policy (LWD and its variants) also returns a
`WeightGenerator` from `weight_generator()`: export, latent maps and reconstruction go through it.
Nothing outside a method's folder names it: a new method is a new folder under `methods/` (or a
class registered from anywhere, e.g. a test).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from lwd.config import DataInfo, TrainConfig, from_dict
from lwd.methods.target_mlp import TargetMLPSpec

if TYPE_CHECKING:
    from lwd.data import Episodes, SegmentDataset


@dataclass
class Stage:
    """One training stage: the sub-module it optimises (and EMA-averages), batches and loss."""

    name: str
    steps: int
    module: nn.Module
    """The parameters this stage optimises and averages (EMA); the rest stay frozen."""
    sample_batch: Callable[[np.random.Generator], dict[str, torch.Tensor]]
    loss: Callable[[dict[str, torch.Tensor]], tuple[torch.Tensor, dict[str, torch.Tensor]]]
    """Batch -> (loss, metrics). Metrics are detached scalar tensors, read only at logging steps, so a
    GPU run does not wait for the device every step."""
    lr: float
    prepare: Callable[[], None] = field(default=lambda: None)
    """Runs when the stage starts, also when a resumed run re-enters it (must be deterministic)."""
    batch_size: int = 0
    """Training examples per step (0: not stated); steps x batch_size is the stage's share of the
    training budget that studies report as samples seen."""
    report: Callable[[], dict[str, Any]] | None = None
    """Measurements taken when the stage ends (on its final, averaged weights), kept in the training
    log under "reports" (e.g. WARPD's world-model validation error against rollout length)."""
    on_step: Callable[[int], None] | None = None
    """Called with the step index (0-based) before each optimisation step, also after a resume: for
    losses whose weights follow a schedule (LWD's KL warm-up) without keeping a counter in the model."""


@dataclass(frozen=True)
class RuntimeOptions:
    """Settings a trained method takes at run time (not at training). The base takes none.

    Fields left at None mean "what the run was trained with"; a method subclasses this with the
    options it understands, and `Method.runtime_options` refuses the others by name."""

    def given(self) -> dict[str, Any]:
        """The options set explicitly (not None), as recorded in results ("policy_kwargs")."""
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class OptionField:
    """One run-time option as the command line offers it (`lwd eval` / `lwd info --FLAG`), read from
    the runtime class: its name, value type, and the docstring under the field as help.

    A field's metadata may refine it: "parse" (str -> value, raising ValueError with the message to
    show), "choices", "minimum" (of an int) and "metavar"."""

    name: str
    type: type
    help: str
    metadata: Mapping[str, Any]


def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of a dataclass and of its bases (the string right after the
    field's line), whitespace collapsed; fields without one, or whose source cannot be read, are absent."""
    import ast
    import inspect
    import textwrap

    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, after in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(after, ast.Expr)
                    and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)):
                docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def option_fields(cls: type[RuntimeOptions]) -> list[OptionField]:
    """The run-time options of a runtime class, in field order (see `OptionField`)."""
    import dataclasses
    import types
    import typing

    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    out = []
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        args = [a for a in typing.get_args(hint) if a is not type(None)] if isinstance(hint, types.UnionType) or \
            typing.get_origin(hint) is typing.Union else [hint]
        if len(args) != 1 or args[0] not in (int, float, str, bool):
            raise TypeError(f"{cls.__name__}.{f.name}: a run-time option is an int, float, str or bool (or None), got {hint}")
        out.append(OptionField(f.name, args[0], docs.get(f.name, ""), f.metadata))
    return out


def parse_horizon(value: str) -> int:
    """An action horizon on the command line: a positive integer, or 'episode' (0: once per episode)."""
    if value.lower() == "episode":
        return 0
    try:
        horizon = int(value)
    except ValueError:
        raise ValueError(f"--action-horizon takes a positive integer or 'episode', got {value!r}") from None
    if horizon <= 0:
        raise ValueError("--action-horizon must be positive (or 'episode')")
    return horizon


@dataclass(frozen=True)
class GenerationRuntime(RuntimeOptions):
    """Run-time options of a method that generates (a policy or an action chunk) every H steps."""

    action_horizon: int | None = field(default=None, metadata={"parse": parse_horizon, "metavar": "H"})
    """Steps between generations (LWD: regenerate the MLP; DP: execute Ta actions per plan);
    0 ('episode' on the command line) means once per episode, where a method supports it."""
    sampler: str | None = field(default=None, metadata={"choices": ("ddim", "ddpm")})
    """'ddim' or 'ddpm'."""
    inference_steps: int | None = field(default=None, metadata={"minimum": 1, "metavar": "N"})
    """Denoising steps of the sampler."""
    generation_delay: int | None = field(default=None, metadata={"minimum": 0, "metavar": "K"})
    """Steps between the observation a generation starts from and the step its result is used
    (a generator that runs beside the control loop); the first generation of an episode is waited for."""

    def __post_init__(self) -> None:
        if self.generation_delay is not None and self.generation_delay < 0:
            raise ValueError(f"generation_delay must be >= 0, got {self.generation_delay}")
        if self.action_horizon is not None and self.action_horizon < 0:
            raise ValueError(f"action_horizon must be >= 1 (or 0: once per episode), got {self.action_horizon}")
        if self.sampler is not None and self.sampler not in ("ddim", "ddpm"):
            raise ValueError(f"sampler must be 'ddim' or 'ddpm', got {self.sampler!r}")
        if self.inference_steps is not None and self.inference_steps < 1:
            raise ValueError(f"inference_steps must be >= 1, got {self.inference_steps}")


@dataclass(frozen=True)
class Cost:
    """Parameters and FLOPs of one control step at batch 1 (FLOPs from FlopCounterMode).

    A method that generates (LWD: a policy; DP: an action chunk) pays `flops_generation` every
    `generation_every` steps plus `flops_policy_step` at every step; one that does not
    (`generation_every == 0`) pays `flops_policy_step` only."""

    params_total: int
    params_per_step: int
    flops_policy_step: int
    flops_generation: int = 0
    generation_every: int = 0
    details: Mapping[str, Any] = field(default_factory=dict)
    """Method-specific figures (sub-module sizes, sampler), listed after the parameter counts."""

    @property
    def generates(self) -> bool:
        return self.generation_every > 0

    @property
    def flops_per_step(self) -> float:
        if not self.generates:
            return self.flops_policy_step
        return self.flops_generation / self.generation_every + self.flops_policy_step

    def flops_per_step_measured(self, generations: int, steps: int) -> float:
        """FLOPs per step of what an evaluation actually ran (e.g. one generation per episode)."""
        if not self.generates or steps == 0:
            return self.flops_per_step
        return (generations * self.flops_generation + steps * self.flops_policy_step) / steps

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"params_total": self.params_total, "params_per_step": self.params_per_step, **self.details}
        if self.generates:
            out.update(flops_generation=self.flops_generation, flops_policy_step=self.flops_policy_step,
                       generation_every=self.generation_every)
        else:
            out["flops_policy_step"] = self.flops_policy_step
        out["flops_per_step"] = self.flops_per_step
        return out


@dataclass(frozen=True)
class Preset:
    """Named settings: method and optimiser values, optionally on top of another preset."""

    method: Mapping[str, Any] = field(default_factory=dict)
    train: Mapping[str, Any] = field(default_factory=dict)
    extends: str = ""
    """Name of the preset (of the same method) whose values these override."""


@dataclass(frozen=True)
class BenchCell:
    """How one bench cell (a method variant at an action horizon H) maps onto a trained run."""

    overrides: tuple[str, ...]
    """Method settings (`key=value`) added to the bench's own for this cell's training run."""
    runtime: RuntimeOptions
    """Run-time options of the evaluation."""
    run_tag: str = ""
    """Names the trained run among the method's runs (cells with the same tag share one run)."""


class Policy:
    """Acts in one episode at a time: `reset` before each episode, `act` once per control step.

    `steps` and `generations` count what the policy ran (control steps; generated policies or
    action chunks) so evaluations report the FLOPs actually spent."""

    batches_acting: ClassVar[bool] = False
    """True when `act_batch` shares work across policies (e.g. one batched network call)."""

    def __init__(self) -> None:
        self.steps = 0
        self.generations = 0

    def reset(self, seed: int, task: int | None = None) -> None:
        raise NotImplementedError

    def act(self, obs: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    @classmethod
    def act_batch(cls, policies: Sequence["Policy"], obs: np.ndarray) -> np.ndarray:
        """One step of several policies (same model and settings): obs (N, Do) -> actions (N, Da).

        The default steps each policy alone; a method overrides it to batch its network calls."""
        return np.stack([policy.act(o) for policy, o in zip(policies, obs)])


class Method(nn.Module):
    """A trainable method: config, model, training stages, runtime policy and cost."""

    name: ClassVar[str] = ""
    config_class: ClassVar[type] = type(None)
    runtime_class: ClassVar[type[RuntimeOptions]] = RuntimeOptions
    presets: ClassVar[Mapping[str, Preset]] = {"default": Preset()}
    bench_variants: ClassVar[tuple[str, ...]] = ("",)
    """Suffixes `lwd bench` accepts after the name (e.g. "ddim" for `dp-ddim`); "" is the plain method."""
    reads_images: ClassVar[bool] = False
    """True for a method that reads camera frames when its data has them (`DataInfo.images` then lists
    them, and its policies get image suites' dict observations); others train on the low-dim "obs"."""

    def __init__(self, cfg: Any, info: DataInfo, normalizer: Any) -> None:
        super().__init__()
        self.cfg = cfg
        self.info = info
        self.normalizer = normalizer

    @property
    def device(self) -> torch.device:
        """Where the weights are: training places its datasets there (see `SegmentDataset.to`)."""
        return next(self.parameters()).device

    def stages(self, train_cfg: TrainConfig, episodes: Any) -> list[Stage]:
        """The training stages, their datasets placed on `self.device` (the loop moves the method first)."""
        raise NotImplementedError

    def make_policy(self, runtime: RuntimeOptions | None = None) -> Policy:
        raise NotImplementedError

    def cost(self, runtime: RuntimeOptions | None = None, episode_steps: int | None = None) -> Cost:
        """Cost of one control step with these run-time options. `episode_steps` (the suite's
        episode length) is what a schedule such as "generate once per episode" is costed over."""
        raise NotImplementedError

    @classmethod
    def runtime_options(cls, **given: Any) -> RuntimeOptions:
        """Typed run-time options from keyword values; an option this method does not take is an error."""
        known = set(cls.runtime_class.__dataclass_fields__)
        unknown = sorted(k for k, v in given.items() if v is not None and k not in known)
        if unknown:
            takes = ", ".join(sorted(known)) or "none"
            raise ValueError(f"{cls.name} takes no run-time option {', '.join(unknown)} (it takes: {takes})")
        return from_dict(cls.runtime_class, {k: v for k, v in given.items() if v is not None})

    @classmethod
    def bench_cell(cls, variant: str, horizon: int, cfg: Any, ddim_steps: int) -> BenchCell | None:
        """The training settings and run-time options of this method's bench cell at horizon H.

        `cfg` is the method config the bench's preset and overrides give. Return None when H does
        not apply (the method is evaluated once, whatever the horizons). The default: one trained
        run, evaluated with the method's runtime options at their defaults."""
        return None

    def weight_generator(self) -> "WeightGenerator | None":
        """The capability of a method that generates policy weights (see `WeightGenerator`); None for
        one that does not (it acts with its own network: DP, BC). Tools call `weight_generator_of`."""
        return None


# ------------------------------------------------------------------------------ generating methods
@dataclass(frozen=True)
class Exporter:
    """One export format a generating method adds to the shared ones (`lwd export RUN --format NAME`)."""

    files: tuple[str, ...]
    """The files it writes into the export folder: an existing one is refused unless --overwrite, and one
    a later export does not write again is removed (other formats' files may share the folder)."""
    write: Callable[..., dict[str, Any]]
    """(run_dir, folder, **options) -> figures worth reporting; writes the files into `folder` (empty)."""
    summary: Callable[[dict[str, Any], Path], str]
    """(write's figures, the export folder) -> the line `lwd export` prints."""


class WeightGenerator(ABC):
    """What a method that generates the weights theta of a small MLP policy offers the deployment and
    analysis tools (export, exported evaluation, latent maps, reconstruction), so that those tools
    need no knowledge of the method's modules:

        segments -> encode -> z (posterior means)      sample(condition) -> z      decode(z) -> theta

    theta runs as `target` (a plain MLP, `lwd.methods.target_mlp`) on the last `policy_obs_steps`
    observations, stacked oldest first, normalised with `input_normalizer` (its "obs"); its action is
    normalised too. A model that reads camera frames runs it on step vectors [obs, image features]
    instead of observations (`input_dim` > the observation's; `frame_encoder` makes the features).
    A method returns one from `Method.weight_generator()`."""

    def __init__(self, method: Method, target: TargetMLPSpec, policy_obs_steps: int, horizon: int, latent_dim: int,
                 input_normalizer: Any = None, frame_encoder: nn.Module | None = None) -> None:
        self.method = method
        self.target = target
        self.policy_obs_steps = policy_obs_steps
        """Observations the generated MLP sees per step (target.obs_dim = policy_obs_steps x input_dim)."""
        self.horizon = horizon
        """H: the steps one segment spans, and how often the policy is regenerated unless told otherwise."""
        self.latent_dim = latent_dim
        self.input_normalizer = method.normalizer if input_normalizer is None else input_normalizer
        """Normaliser of one step's input ("obs": the observation, or the step vector) and of the action."""
        self.frame_encoder = frame_encoder
        """For a model that reads camera frames: {image key: (B, H, W, 3) uint8} -> (B, features), the raw
        features that follow the observation in a step vector; None for a state model."""

    @property
    def input_dim(self) -> int:
        """Size of one step's input: the observation's, or the step vector's [obs, image features]."""
        return self.target.obs_dim // self.policy_obs_steps

    @abstractmethod
    def segments(self, episodes: "Episodes") -> "SegmentDataset":
        """The H-step segments of `episodes` as `encode` takes them, one per step (padded at episode
        ends): `segments(e).sample_batch(steps)` is the batch of the segments starting at those steps."""

    @abstractmethod
    def encode(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """A batch of `segments` -> posterior means (B, Dz) (no gradient)."""

    @abstractmethod
    def sample(self, task: torch.Tensor | None, obs_history: torch.Tensor | None, generator: torch.Generator | None = None,
               sampler: str | None = None, steps: int | None = None) -> torch.Tensor:
        """Latents the prior generates for conditions: task (B,), obs_history (B, To, Do) normalised
        (either may be None when the method does not use it) -> z (B, Dz)."""

    @abstractmethod
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, Dz) -> theta (B, P), P = target.num_params, laid out as `TargetMLPSpec.unflatten` reads it."""

    def exporters(self) -> Mapping[str, Exporter]:
        """Export formats of this method beyond the shared ones (npz, c), which need only `target`."""
        return {}

    def load_exported(self, folder: Path, run_dir: Path | None) -> Any:
        """The method whose policies run from the files of `folder` (`lwd eval --exported`): an object
        with the method's interface (make_policy, runtime_options, cost, ...)."""
        raise ValueError(f"{self.method.name} has no evaluation from exported files")


# ------------------------------------------------------------------------------ registry
_REGISTRY: dict[str, type[Method]] = {}


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator: make a method known by its `name` to train, eval, bench and the CLI."""
    if not cls.name or "-" in cls.name:
        raise ValueError(f"{cls.__qualname__}.name must be a non-empty name without '-', got {cls.name!r}")
    if not isinstance(cls.config_class, type) or cls.config_class is type(None):
        raise ValueError(f"{cls.__qualname__}.config_class must be the method's config dataclass")
    if "default" not in cls.presets:
        raise ValueError(f"{cls.__qualname__}.presets needs a 'default' preset")
    _REGISTRY[cls.name] = cls
    return cls


def _discover() -> None:
    """Import every method folder under lwd/methods/ once (each registers itself on import)."""
    import importlib
    import pkgutil

    import lwd.methods as package

    for module in pkgutil.iter_modules(package.__path__):
        if module.ispkg:
            importlib.import_module(f"{package.__name__}.{module.name}")


def method_names() -> list[str]:
    _discover()
    return sorted(_REGISTRY)


def get_method(name: str) -> type[Method]:
    if name not in _REGISTRY:
        _discover()
    if name not in _REGISTRY:
        raise ValueError(f"unknown method {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def generating_method_names() -> list[str]:
    """The registered methods that generate policy weights (override `Method.weight_generator`)."""
    _discover()
    return sorted(n for n, c in _REGISTRY.items() if c.weight_generator is not Method.weight_generator)


def weight_generator_of(model: Any) -> WeightGenerator:
    """The model's `WeightGenerator`, or a ValueError that says which methods have one."""
    generator = model.weight_generator()
    if generator is None:
        raise ValueError(f"{model.name} does not generate policy weights; export, latents and reconstruct need "
                         f"{_either(generating_method_names())}")
    return generator


def _either(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def resolve_preset(method: type[Method], name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(method settings, optimiser settings) of a preset, its `extends` chain applied base first."""
    chain: list[Preset] = []
    current = name
    while current:
        if current not in method.presets:
            raise ValueError(f"unknown preset {current!r} for {method.name}; known: {', '.join(method.presets)}")
        preset = method.presets[current]
        if preset in chain:
            raise ValueError(f"preset {name!r} of {method.name} extends itself")
        chain.append(preset)
        current = preset.extends
    settings: dict[str, Any] = {}
    train: dict[str, Any] = {}
    for preset in reversed(chain):
        settings.update(preset.method)
        train.update(preset.train)
    return settings, train


def build_method(name: str, cfg: Any, info: DataInfo, normalizer: Any, seed: int | None = None) -> Method:
    """A fresh (untrained) method; with `seed`, its initial weights depend on nothing else."""
    cls = get_method(name)
    if not isinstance(cfg, cls.config_class):
        raise ValueError(f"{name} needs a {cls.config_class.__name__}, got {type(cfg).__name__}")
    if seed is not None:
        torch.manual_seed(seed)
    return cls(cfg, info, normalizer)
