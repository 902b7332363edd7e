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

from hcm.losses import DYNAMIC_FACTORS, dynamic_contrast_terms
from hcm.memory import Memory
from hcm.terms.base import Batch, LogValues, MemoryRequest, TermOptions, register_loss_term


class IdentityOptions(TermOptions):
    factor: str = Field("focal", description="registered dynamic factor form (hcm.losses.DYNAMIC_FACTORS)")
    gamma: float = Field(2.0, ge=0, description="focusing exponent of the focal dynamic factor")
    tau: float = Field(0.05, gt=0, description="temperature of L_id")

    @field_validator("factor")
    @classmethod
    def _known_factor(cls, name: str) -> str:
        if name not in DYNAMIC_FACTORS:
            raise ValueError(f"unknown dynamic factor {name!r}; registered: {', '.join(DYNAMIC_FACTORS.names())}")
        return name


@register_loss_term("identity", options=IdentityOptions,
                    memories=(MemoryRequest("identity", "cluster", momentum=0.1),),
                    logs=("loss_id", "delta_mean", "delta_max", "p_mean"), label="identity loss $L_{id}$")
def identity_term(q: torch.Tensor, batch: Batch, memories: Mapping[str, Memory],
                  opts: IdentityOptions) -> tuple[torch.Tensor, LogValues]:
    """L_id of the batch; logs the loss, the factor's mean and max and the mean target probability."""
    banks = memories["identity"].banks
    parts = [dynamic_contrast_terms(q, bank, batch["targets"], tau=opts.tau, factor=opts.factor, gamma=opts.gamma)
             for bank in banks]
    loss, delta, p = parts[0]
    if len(parts) > 1:
        loss = torch.stack([part[0] for part in parts]).mean()
    return loss, {"loss_id": loss.detach(), "delta_mean": delta.mean(), "delta_max": delta.max(),
                  "p_mean": p.mean()}
