"""Loss terms as registered plug-ins, and their composition into the training loss.

A loss term is one :class:`LossTerm` in :data:`LOSS_TERMS`: a function of the batch's
embeddings ``q`` (B, d), the batch (``targets``: pseudo labels, ``indices``: image
indices) and the memories it asked for, returning its loss and the values it logs. It
declares

- ``options``: a pydantic model, its config section ``loss.terms.<name>`` (every term
  has ``weight``);
- ``memories``: the memories it reads (:class:`MemoryRequest`: name, kind, default
  momentum); the trainer builds each requested memory once per epoch (``memory.<name>``
  sets its update rule and momentum) and updates it after every optimiser step;
- ``logs``: the columns it adds to ``epochs.csv`` (the first is its loss).

The training loss is ``L = sum over the configured terms of weight * term``
(:func:`total_loss`), computed on the WHOLE batch: under gradient accumulation the
trainer evaluates it on the whole batch's embeddings (see :mod:`hcm.engine.trainer`),
so every batch normaliser is the whole batch's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from hcm.registry import Registry

if TYPE_CHECKING:
    from hcm.memory import Memory


class TermOptions(BaseModel):
    """Config section of a loss term (``loss.terms.<name>``); subclass it to add options."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # config.yaml records what it was given

    weight: float = Field(1.0, ge=0, description="weight of the term in the total loss")


@dataclass(frozen=True)
class MemoryRequest:
    """A memory a term reads: ``name`` (config section ``memory.<name>``, shared by terms asking
    for the same name), ``kind`` (``cluster`` or ``instance``, :data:`hcm.memory.MEMORY_KINDS`)
    and the default momentum of its update rule."""

    name: str
    kind: str
    momentum: float


Batch = Mapping[str, torch.Tensor]
LogValues = dict[str, torch.Tensor]
TermFn = Callable[[torch.Tensor, Batch, Mapping[str, "Memory"], Any], tuple[torch.Tensor, LogValues]]


@dataclass(frozen=True)
class LossTerm:
    """A registered loss term (see the module docstring)."""

    name: str
    compute: TermFn
    options: type[TermOptions] = TermOptions
    memories: tuple[MemoryRequest, ...] = ()
    logs: tuple[str, ...] = ()
    label: str = ""  # axis label of its loss curve (matplotlib mathtext allowed)

    @property
    def loss_column(self) -> str:
        return self.logs[0] if self.logs else f"loss_{self.name}"


LOSS_TERMS: Registry[LossTerm] = Registry("loss term")


def register_loss_term(name: str, *, options: type[TermOptions] = TermOptions,
                       memories: tuple[MemoryRequest, ...] = (), logs: tuple[str, ...] = (),
                       label: str = "") -> Callable[[TermFn], TermFn]:
    """Decorator registering ``compute(q, batch, memories, options) -> (loss, logs)`` as a loss term."""

    def deco(fn: TermFn) -> TermFn:
        LOSS_TERMS.register(name)(LossTerm(name, fn, options, memories, logs or (f"loss_{name}",),
                                           label or name))
        return fn

    return deco


def memory_requests(term_names: Mapping[str, Any] | list[str]) -> dict[str, MemoryRequest]:
    """Memory name -> request, over the given terms (first request of a name wins; kinds must agree)."""
    out: dict[str, MemoryRequest] = {}
    for name in term_names:
        for req in LOSS_TERMS.get(name).memories:
            if req.name in out and out[req.name].kind != req.kind:
                raise ValueError(f"memory {req.name!r} is asked for as {out[req.name].kind} and as {req.kind} "
                                 f"(loss term {name!r}); give one of them another name")
            out.setdefault(req.name, req)
    return out


def total_loss(q: torch.Tensor, batch: Batch, memories: Mapping[str, Memory],
               terms: Mapping[str, TermOptions], *, diagnostics: bool = False
               ) -> tuple[torch.Tensor, dict[str, float]]:
    """``L = sum_t weight_t * L_t`` over ``terms`` in order (method.md, "Losses"), and the logged values.

    Logs each term's values (its ``logs``) and ``loss`` (the total) as floats. Memories are
    read, not written. ``diagnostics`` (and ``q`` in a graph) adds :func:`gradient_norms`.
    """
    if not terms:
        raise ValueError("no loss term configured; set at least one under loss.terms")
    total: torch.Tensor | None = None
    logs: LogValues = {}
    weighted_terms: dict[str, torch.Tensor] = {}
    for name, opts in terms.items():
        term = LOSS_TERMS.get(name)
        loss, values = term.compute(q, batch, {r.name: memories[r.name] for r in term.memories}, opts)
        weighted = opts.weight * loss
        weighted_terms[name] = weighted
        total = weighted if total is None else total + weighted
        logs.update(values)
    assert total is not None
    logs["loss"] = total.detach()
    if diagnostics and q.requires_grad:
        logs.update(gradient_norms(q, weighted_terms))
    names = list(logs)
    floats = torch.stack([logs[k].to(device=q.device, dtype=torch.float64) for k in names]).tolist()
    return total, dict(zip(names, floats, strict=True))


def gradient_norms(q: torch.Tensor, weighted: Mapping[str, torch.Tensor]) -> LogValues:
    """Gradient-scale diagnostics w.r.t. the embeddings (method.md, "Gradient-scale diagnostics").

    For each term t: ``gnorm_<t> = ||d(weight_t L_t)/dq||_F`` over the batch and
    ``gshare_<t> = gnorm_<t> / sum_u gnorm_<u>`` (its share; the shares sum to 1), and
    ``gnorm_total = ||dL/dq||_F`` (below the sum of the terms' norms where they pull apart).
    ``torch.autograd.grad`` w.r.t. ``q`` traverses the loss only, not the network, and
    accumulates into no ``.grad``: the training step is unchanged.
    """
    grads = {}
    for name, loss in weighted.items():
        (g,) = torch.autograd.grad(loss, q, retain_graph=True, allow_unused=True)
        grads[name] = torch.zeros_like(q) if g is None else g.detach()
    norms = {name: g.norm() for name, g in grads.items()}
    norm_sum = torch.stack(list(norms.values())).sum()
    tiny = torch.finfo(norm_sum.dtype).tiny
    out: LogValues = {}
    for name, norm in norms.items():
        out[f"gnorm_{name}"] = norm
        out[f"gshare_{name}"] = norm / norm_sum.clamp_min(tiny)
    out["gnorm_total"] = torch.stack(list(grads.values())).sum(dim=0).norm()
    return out


def gradient_columns() -> tuple[str, ...]:
    """The columns :func:`gradient_norms` adds to ``epochs.csv``, for every registered term."""
    names = [term.name for term in LOSS_TERMS.values()]
    return (*(f"gnorm_{n}" for n in names), *(f"gshare_{n}" for n in names), "gnorm_total")


def term_log_columns() -> tuple[str, ...]:
    """Every registered term's log columns, in registration order."""
    return tuple(col for term in LOSS_TERMS.values() for col in term.logs)
