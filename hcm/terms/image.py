"""Loss term ``image``: HCM's image-level sample constraint loss L_img over the instance memory.

method.md, "Losses": hardest positive against the ``n_neg`` hardest negatives in the
image memory (:func:`hcm.losses.sample_constraint_terms`); the mean runs over the
batch's anchors that have a positive. It reads the memory's first bank (with the
two-bank ``hybrid`` rule, the hard-member table).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from pydantic import Field

from hcm.losses import sample_constraint_terms
from hcm.memory import Memory
from hcm.terms.base import Batch, LogValues, MemoryRequest, TermOptions, register_loss_term


class ImageOptions(TermOptions):
    tau_v: float = Field(0.05, gt=0, description="temperature of L_img")
    n_neg: int = Field(50, gt=0, description="hardest negatives per anchor in L_img")


@register_loss_term("image", options=ImageOptions,
                    memories=(MemoryRequest("image", "instance", momentum=0.2),),
                    logs=("loss_img", "img_anchor_frac"), label="image loss $L_{img}$")
def image_term(q: torch.Tensor, batch: Batch, memories: Mapping[str, Memory],
               opts: ImageOptions) -> tuple[torch.Tensor, LogValues]:
    """L_img of the batch; logs the loss and the fraction of anchors that had a positive."""
    memory = memories["image"]
    loss, has_pos = sample_constraint_terms(q, memory.features, memory.labels, batch["indices"], batch["targets"],
                                            tau_v=opts.tau_v, n_neg=opts.n_neg)
    return loss, {"loss_img": loss.detach(), "img_anchor_frac": has_pos.float().mean()}
