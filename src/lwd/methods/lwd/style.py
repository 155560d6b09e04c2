"""Style on request: classifier-free guidance on an expert-style label in LWD's latent prior.

Demonstrations made with several expert styles (`lwd demos SUITE --styles all`) record each step's
style id. With `style_condition=true` the prior p(z | condition) also gets a learned embedding of
the style of each segment (its first step's), and during prior training the label is replaced by
a 'no style' token with probability `style_dropout`, so one denoiser learns both p(z | c, style)
and p(z | c) (Ho & Salimans 2022, "Classifier-Free Diffusion Guidance"). The VAE does not see the
label: the latents are the same a run without styles learns; only the prior is told which style
each came from.

At run time (`LWDRuntime`: `lwd eval RUN --style NAME --guidance W`), every denoising step mixes the
two noise predictions at the same latent,

    eps = eps(z_k, k, c, no style) + w * (eps(z_k, k, c, style) - eps(z_k, k, c, no style)),

inside the model's own DDIM/DDPM chain. w = 1 is the conditional prior itself (one denoiser pass a
step), w > 1 pushes the sample further toward the style (two passes a step), w = 0 ignores it.
Without a style the prior samples with the 'no style' token: the model's normal behaviour, the
data's style mix. The exported generator (generator.onnx) is that unconditional one; a style is
asked for in the library only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from lwd.methods.base import GenerationRuntime

if TYPE_CHECKING:
    from lwd.methods.lwd.model import LWD


@dataclass(frozen=True)
class LWDRuntime(GenerationRuntime):
    """Run-time options of LWD (and the methods built on it): generation's, plus a style on request."""

    style: str | None = field(default=None, metadata={"metavar": "NAME"})
    """Generate policies of this expert style (a name the run's data recorded, e.g. other-grasp):
    classifier-free guidance in the prior of a run trained with style_condition=true. Without it the
    prior samples unconditionally (the data's mix of styles)."""
    guidance: float | None = field(default=None, metadata={"metavar": "W"})
    """Guidance weight w of --style: eps = eps_uncond + w (eps_style - eps_uncond); 1 samples the
    style's conditional prior (one denoiser pass a step), above 1 pushes further toward the style
    (two passes a step), 0 ignores it. 1 when not given."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.guidance is not None and not (self.guidance >= 0 and self.guidance < float("inf")):
            raise ValueError(f"guidance must be a finite number >= 0, got {self.guidance}")
        if self.guidance is not None and self.style is None:
            raise ValueError("guidance steers sampling toward a style: give the style too (style=NAME, --style NAME)")


@dataclass(frozen=True)
class StyleRequest:
    """A resolved request: the style's id in the prior's embedding and the guidance weight."""

    style: int
    guidance: float
    name: str


def style_request(model: "LWD", runtime: Any) -> StyleRequest | None:
    """The style a run-time choice asks for, checked against the run (None: none asked for).

    Refused in one line: a style for a run trained without style_condition, or a name the run's
    data did not record (the known ones are listed)."""
    name = getattr(runtime, "style", None)
    if name is None:
        return None
    known = model.info.styles
    if not getattr(model.cfg, "style_condition", False) or not known:
        raise ValueError(f"style={name!r}: this run was trained without style_condition, so its prior knows no styles; "
                         "train on demos with styles (lwd demos SUITE --styles all) with --set style_condition=true")
    if name not in known:
        raise ValueError(f"unknown style {name!r}; this run knows {', '.join(known)}")
    guidance = getattr(runtime, "guidance", None)
    return StyleRequest(known.index(name), 1.0 if guidance is None else float(guidance), name)


def drop_styles(style: torch.Tensor, dropout: float, no_style: int) -> torch.Tensor:
    """Training labels (B,) with each replaced by the 'no style' token with probability `dropout`
    (drawn from torch's global stream, as the prior's noise and steps are)."""
    dropped = torch.rand(style.shape, device=style.device) < dropout
    return torch.where(dropped, torch.full_like(style, no_style), style)


def guided_noise(prior: torch.nn.Module, z: torch.Tensor, k: torch.Tensor, cond: torch.Tensor,
                 uncond: torch.Tensor | None, guidance: float) -> torch.Tensor:
    """The denoiser's noise prediction at z (B, Dz), steps k (B,): with `uncond` (B, C) the guided mix
    eps_uncond + w (eps_cond - eps_uncond) from one batched pass over both conditions, else eps_cond."""
    if uncond is None:
        return prior(z, k, cond)
    both = prior(torch.cat([z, z]), torch.cat([k, k]), torch.cat([cond, uncond]))  # (2B, Dz)
    eps_cond, eps_uncond = both.chunk(2)
    return eps_uncond + guidance * (eps_cond - eps_uncond)
