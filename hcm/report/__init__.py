"""Reports: tidy aggregation of run directories, tables (Markdown, LaTeX, CSV), figures, index.

``aggregate`` reads run directories into ``results.csv`` (one row per dataset, variant,
seed; percent) and its companions (``cmc.csv``, ``curves.csv``, ``runs.csv``);
``tables`` and ``figures`` derive everything else from those files; ``build`` writes
the whole ``reports/`` tree and its ``README.md`` index.
"""
