"""Loss term ``identity``: HCM's identity-level dynamic contrast loss L_id over the cluster memory.

method.md, "Losses": ``L_id = (1/B) sum_i -delta_i log p_i`` (:func:`hcm.losses.dynamic_contrast_terms`)
with the dynamic factor ``factor`` (:data:`hcm.losses.DYNAMIC_FACTORS`; ``none`` =
Cluster Contrast's ClusterNCE). With a multi-bank memory rule (``hybrid``) the loss is
the mean of L_id over the banks (HHCL averages its hard- and mean-centroid losses).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from pydantic import Field, field_validator

from hcm.losses import DYNAMIC_FACTORS, identity_parts
from hcm.memory import Memory
from hcm.terms.base import Batch, LogValues, MemoryRequest, TermOptions, register_loss_term
from hcm.variants import DEFAULT_FACTOR


class IdentityOptions(TermOptions):
    factor: str = Field(DEFAULT_FACTOR, description="registered dynamic factor form (hcm.losses.DYNAMIC_FACTORS); "
                                                    "default: the readings study's choice")
    gamma: float = Field(2.0, ge=0, description="hardness parameter of the dynamic factor: focal's and "
                                                "focal_raw's exponent, hard_negatives' beta")
    tau: float = Field(0.05, gt=0, description="temperature of L_id")

    @field_validator("factor")
    @classmethod
    def _known_factor(cls, name: str) -> str:
        if name not in DYNAMIC_FACTORS:
            raise ValueError(f"unknown dynamic factor {name!r}; registered: {', '.join(DYNAMIC_FACTORS.names())}")
        return name


@register_loss_term("identity", options=IdentityOptions,
                    memories=(MemoryRequest("identity", "cluster", momentum=0.1),),
                    logs=("loss_id", "delta_mean", "delta_max", "p_mean", "negw_max", "id_grad_scale"),
                    label="identity loss $L_{id}$")
def identity_term(q: torch.Tensor, batch: Batch, memories: Mapping[str, Memory],
                  opts: IdentityOptions) -> tuple[torch.Tensor, LogValues]:
    """L_id of the batch; logs the loss, the factor's mean and max, the mean target probability, the
    largest weight on a negative (1 unless the reading weighs negatives) and the effective gradient
    scale (method.md, "Gradient-scale diagnostics"; the mean over the banks for a multi-bank rule)."""
    banks = memories["identity"].banks
    parts = [identity_parts(q, bank, batch["targets"], tau=opts.tau, factor=opts.factor, gamma=opts.gamma)
             for bank in banks]
    first = parts[0]
    loss = first.loss if len(parts) == 1 else torch.stack([part.loss for part in parts]).mean()
    negw_max = first.p.new_ones(()) if first.negative_weights is None else first.negative_weights.max()
    scale = torch.stack([part.grad_scale.to(first.p.dtype) for part in parts]).mean()
    return loss, {"loss_id": loss.detach(), "delta_mean": first.delta.mean(), "delta_max": first.delta.max(),
                  "p_mean": first.p.mean(), "negw_max": negw_max, "id_grad_scale": scale}
