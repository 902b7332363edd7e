"""HCM reproduction harness: Hybrid Contrastive Learning for unsupervised re-ID.

The loss forms implemented here are this project's documented reading of the
paper's abstract (see ``docs/method.md``), not the paper's own equations.
"""

__version__ = "0.1.0"
