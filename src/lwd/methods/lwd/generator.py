"""LWD's `WeightGenerator`: what export, exported evaluation, latent maps and reconstruction use of
an LWD (or WARPD, lcmlp) model, through the contract instead of its modules (vae, prior, samplers)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import torch

from lwd.data import Episodes, SegmentDataset
from lwd.data.keys import ACTIONS, MASK, STATES, TASK
from lwd.methods.base import Exporter, WeightGenerator

if TYPE_CHECKING:
    from lwd.methods.lwd.model import LWD


class LWDWeightGenerator(WeightGenerator):
    """Encoder means, prior samples and hypernetwork (or lcmlp) decodes of one LWD model."""

    method: "LWD"

    def __init__(self, model: "LWD") -> None:
        super().__init__(model, model.target, model.cfg.policy_obs_steps, model.cfg.horizon, model.cfg.latent_dim,
                         input_normalizer=model.step_normalizer, frame_encoder=model.vision)

    def segments(self, episodes: Episodes) -> SegmentDataset:
        return self.method.segment_dataset(episodes, "pad")

    @torch.no_grad()
    def encode(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        mu, _ = self.method.vae.encoder(batch[STATES], batch[ACTIONS], batch[MASK], batch.get(TASK))
        return mu

    @torch.no_grad()
    def sample(self, task: torch.Tensor | None, obs_history: torch.Tensor | None, generator: torch.Generator | None = None,
               sampler: str | None = None, steps: int | None = None) -> torch.Tensor:
        return self.method.sample_latents(self.method.condition(task, obs_history), generator, sampler, steps)

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.method.vae.decoder(z)

    def exporters(self) -> Mapping[str, Exporter]:
        """onnx: the generator (DDIM unrolled) and the controller as ONNX graphs (`lwd.methods.lwd.onnx_export`);
        for a model that reads camera frames also encoder: the frozen image encoder as an ONNX graph."""
        from lwd.methods.lwd import onnx_export

        formats = {"onnx": onnx_export.exporter(self.method)}
        if self.method.vision is not None:
            formats["encoder"] = onnx_export.encoder_exporter(self.method)
        return formats

    def load_exported(self, folder: Path, run_dir: Path | None) -> Any:
        from lwd.methods.lwd.exported import ExportedMethod

        return ExportedMethod(self.method, folder, run_dir)
