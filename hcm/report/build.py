"""Build a suite's ``reports/`` tree from the aggregated tables: tables, figures and the README index."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from hcm.errors import HCMError
from hcm.report import figures, tables
from hcm.report.aggregate import FILES, read_results
from hcm.report.compute import JOBS_FILE, compute_table, job_records_from_csv
from hcm.report.published import load_published
from hcm.report.readme import render_readme
from hcm.report.style import order_datasets
from hcm.utils.io import atomic_write_text

logger = logging.getLogger(__name__)

TABLE_NAMES: tuple[str, ...] = ("main", "ablation", "published")


@dataclass
class Written:
    """Paths written by :func:`build_reports`, grouped for the README index."""

    tables: dict[str, list[Path]] = field(default_factory=dict)
    figures: dict[str, Path] = field(default_factory=dict)
    readme: Path | None = None

    def all(self) -> list[Path]:
        out = [p for ps in self.tables.values() for p in ps] + list(self.figures.values())
        return out + ([self.readme] if self.readme else [])


def figure_names(datasets: Sequence[str]) -> dict[str, str]:
    """Figure key -> file name; the contract with the workflow's report rule."""
    names = {f"cmc_{d}": f"cmc_{d}.png" for d in datasets}
    names["ablation"] = "ablation.png"
    names.update({f"training_{d}": f"training_{d}.png" for d in datasets})
    return names


def _read_optional(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise HCMError(f"{path}: not found; run `hcm report aggregate` first (it writes {', '.join(FILES.values())})")
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def build_reports(tables_dir: str | Path, figures_dir: str | Path, readme: str | Path, *, suite: str,
                  published: str | Path | None = None, datasets: Sequence[str] | None = None,
                  progress: bool = True) -> Written:
    """Write the tables (md/tex/csv), the figures (png) and the README index of one suite.

    ``tables_dir`` must hold the output of ``hcm report aggregate``; the derived tables are
    written beside it. ``datasets`` (default: those in results.csv) fixes which per-dataset
    figures are drawn.
    """
    tables_dir, figures_dir, readme = Path(tables_dir), Path(figures_dir), Path(readme)
    results = read_results(tables_dir / FILES["results"])
    cmc = _read_optional(tables_dir / FILES["cmc"])
    curves = _read_optional(tables_dir / FILES["curves"])
    runs = _read_optional(tables_dir / FILES["runs"])
    datasets = list(datasets) if datasets else order_datasets(results["dataset"].unique())
    missing = sorted(set(datasets) - set(results["dataset"]))
    if missing:
        raise HCMError(f"{tables_dir / FILES['results']}: no results for dataset(s) {missing}; "
                       "aggregate their runs first or drop them from --datasets")
    pub = load_published(published)
    written = Written()

    built = [tables.main_table(results, suite=suite), tables.ablation_table(results, suite=suite),
             tables.published_table(results, pub, suite=suite)]
    job_records = None
    if (tables_dir / JOBS_FILE).is_file():  # the jobs' benchmark records, when the workflow collected them
        job_records = job_records_from_csv(tables_dir / JOBS_FILE)
        built.append(compute_table(job_records, suite=suite))
    for table in built:
        written.tables[table.name] = tables.write_table(table, tables_dir)

    names = figure_names(datasets)
    jobs = [(f"cmc_{d}", lambda p, d=d: figures.plot_cmc_dataset(cmc, d, p)) for d in datasets]
    jobs.append(("ablation", lambda p: figures.plot_ablation(results, p)))
    jobs += [(f"training_{d}", lambda p, d=d: figures.plot_dataset_curves(curves, d, p)) for d in datasets]
    for key, draw in tqdm(jobs, desc="figures", disable=not progress):
        written.figures[key] = draw(figures_dir / names[key])

    text = render_readme(suite=suite, results=results, runs=runs, tables={t.name: t for t in built},
                         table_paths=written.tables, figure_paths=written.figures, readme=readme, jobs=job_records)
    written.readme = atomic_write_text(readme, text)
    logger.info("wrote %d files for the %s suite", len(written.all()), suite)
    return written
