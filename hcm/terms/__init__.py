"""Loss terms: the registry (:mod:`hcm.terms.base`) and the built-in terms, one file each.

``identity`` (:mod:`hcm.terms.identity`, L_id) and ``image`` (:mod:`hcm.terms.image`,
L_img). Add a term from your own module with :func:`register_loss_term`
(docs/extending.md).
"""

from hcm.terms import identity, image  # noqa: F401  (the built-in terms)
from hcm.terms.base import (
    LOSS_TERMS,
    LossTerm,
    MemoryRequest,
    TermOptions,
    gradient_columns,
    gradient_norms,
    memory_requests,
    register_loss_term,
    term_log_columns,
    total_loss,
)

__all__ = ["LOSS_TERMS", "LossTerm", "MemoryRequest", "TermOptions", "gradient_columns", "gradient_norms",
           "memory_requests", "register_loss_term", "term_log_columns", "total_loss"]
