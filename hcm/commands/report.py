"""``hcm report``: aggregate run directories and build tables, figures and the README index.

- ``hcm report aggregate --out-dir DIR RUN_DIR ...`` -> DIR/results.csv (one row per
  dataset, variant, seed; percent), cmc.csv, curves.csv, runs.csv;
- ``hcm report build --tables DIR --figures DIR --readme FILE --suite NAME`` -> the main,
  ablation and published tables (.md, .tex, .csv) in the tables folder, the figures,
  and the README index;
- ``hcm report sweep --out-dir DIR --recipe RECIPE [--set K=V ...] --knob KNOB RUN_DIR ...``
  -> sensitivity.csv/.md, one sensitivity_<knob>.png per knob, README.md;
- ``hcm report study --out-dir DIR --reference ROW [--control ROW] [--matched-control ROW=CONTROL ...] --row ROW RUN_DIR ...``
  -> the readings study: study.csv/.md, diagnostics.csv/.md, study.png, diagnostics.png, README.md;
- ``hcm report scale-recipe --base RECIPE --out FILE RUN_DIR ...`` -> the scale control's recipe
  (L_id weight = the runs' mean effective gradient scale).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="aggregate runs; write tables, figures and the reports index",
                       description=__doc__.split("\n\n")[0])
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    a = actions.add_parser("aggregate", help="run directories -> results.csv, cmc.csv, curves.csv, runs.csv")
    a.add_argument("--out-dir", required=True, type=Path, help="folder for the tidy CSV files")
    a.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="run directories (with metrics.json)")
    a.add_argument("--benchmark", dest="benchmarks", action="append", default=[], type=Path, metavar="TSV",
                   help="a job's Snakemake benchmark file, <benchmark-root>/<rule>/<job>.tsv (repeat); "
                        "written to jobs.csv, the reports' compute table")
    a.add_argument("--benchmark-root", type=Path, default=None,
                   help="folder of the benchmark files (default: two levels above the first one)")
    a.set_defaults(func=run_aggregate)

    b = actions.add_parser("build", help="tables (md/tex/csv), figures and README from aggregated CSVs")
    b.add_argument("--tables", required=True, type=Path, help="folder holding results.csv etc.; tables go here")
    b.add_argument("--figures", required=True, type=Path, help="folder for the figures")
    b.add_argument("--readme", required=True, type=Path, help="README.md index to write")
    b.add_argument("--suite", required=True, help="suite name shown in captions")
    b.add_argument("--published", type=Path, default=None,
                   help="published-numbers CSV (default: the packaged hcm/resources/published_results.csv)")
    b.add_argument("--datasets", nargs="+", default=None, help="datasets to draw per-dataset figures for")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    b.set_defaults(func=run_build)

    s = actions.add_parser("sweep", help="sensitivity figures and table from sweep run directories")
    s.add_argument("--out-dir", required=True, type=Path, help="folder for the sweep's CSV, table and figures")
    s.add_argument("--knob", nargs="+", action="append", required=True, metavar=("KNOB", "RUN_DIR"),
                   help="a config key and the run directories that vary it (repeat per knob)")
    s.add_argument("--recipe", type=Path, default=None,
                   help="training recipe of the sweep: its value of each knob is marked as the default")
    s.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="overrides applied with the recipe (as given to `hcm train`)")
    s.add_argument("--suite", default="", help="suite name shown in the README")
    s.set_defaults(func=run_sweep)

    t = actions.add_parser("study", help="the readings study's tables, figures and decision helper")
    t.add_argument("--out-dir", required=True, type=Path, help="folder for the study's CSV, tables and figures")
    t.add_argument("--row", nargs="+", action="append", required=True, metavar=("ROW", "RUN_DIR"),
                   help="a study row's name and its run directories (all datasets and seeds; repeat per row)")
    t.add_argument("--reference", required=True, help="row the paired differences are taken to (no_dynamic)")
    t.add_argument("--control", default=None, help="second row for paired differences (the scale control)")
    t.add_argument("--matched-control", action="append", default=[], metavar="ROW=CONTROL",
                   help="ROW's own scale control (trained with ROW's measured gradient scale); repeatable")
    t.add_argument("--suite", default="", help="suite name shown in the README")
    t.set_defaults(func=run_study)

    c = actions.add_parser("scale-recipe", help="recipe of the scale control: L_id weight = measured mean "
                                                "effective gradient scale of the given runs")
    c.add_argument("--base", required=True, type=Path, help="the recipe the control trains with otherwise")
    c.add_argument("--out", required=True, type=Path, help="recipe file to write")
    c.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="runs whose id_grad_scale is measured")
    c.set_defaults(func=run_scale_recipe)


def run_aggregate(args: argparse.Namespace) -> int:
    from hcm.report.aggregate import aggregate, write_aggregate

    agg = aggregate(args.runs)
    paths = write_aggregate(agg, args.out_dir)
    print(f"{len(agg.results)} runs -> {paths['results']}")
    if args.benchmarks:
        from hcm.report.aggregate import write_csv
        from hcm.report.compute import JOBS_FILE, job_records

        root = args.benchmark_root or args.benchmarks[0].parent.parent
        jobs = write_csv(job_records(args.benchmarks, root), args.out_dir / JOBS_FILE)
        print(f"{len(args.benchmarks)} jobs' compute records -> {jobs}")
    return 0


def run_build(args: argparse.Namespace) -> int:
    from hcm.report.build import build_reports

    written = build_reports(args.tables, args.figures, args.readme, suite=args.suite, published=args.published,
                            datasets=args.datasets, progress=not args.no_progress)
    print(f"{len(written.all())} files -> {args.readme}")
    return 0


def run_sweep(args: argparse.Namespace) -> int:
    from hcm.report.sweep import collect_sweep, lookup_key, write_sweep_reports

    groups = _grouped(args.knob, "--knob", "knob")
    defaults: dict[str, float] = {}
    if args.recipe is not None:
        from hcm.config import load_train_config

        config = load_train_config(args.recipe, args.overrides).to_dict()
        for knob in groups:
            defaults[knob] = float(lookup_key(config, knob, str(args.recipe)))
    sweep = collect_sweep(groups)
    written = write_sweep_reports(sweep, args.out_dir, defaults=defaults, suite=args.suite)
    print(f"{len(sweep)} sweep runs, {len(groups)} knobs -> {written[-1]}")
    return 0


def _grouped(items: list[list[str]], flag: str, what: str) -> dict[str, list[Path]]:
    """``[[NAME, RUN, ...], ...]`` of a repeated ``flag NAME RUN...`` option -> name -> run directories."""
    from hcm.errors import ConfigError

    groups: dict[str, list[Path]] = {}
    for item in items:
        if len(item) < 2:
            raise ConfigError(f"{flag} {item[0]}: give the {what} and at least one run directory")
        groups.setdefault(item[0], []).extend(Path(p) for p in item[1:])
    return groups


def run_study(args: argparse.Namespace) -> int:
    from hcm.errors import ConfigError
    from hcm.report.study import collect_study, write_study_reports

    rows = _grouped(args.row, "--row", "row")
    matched: dict[str, str] = {}
    for item in args.matched_control:
        row, sep, control = item.partition("=")
        if not sep or not row or not control:
            raise ConfigError(f"--matched-control {item!r}: give ROW=CONTROL, "
                              "e.g. hcm_focal_raw=scale_control_focal_raw")
        matched[row] = control
    runs, per_epoch = collect_study(rows)
    written = write_study_reports(runs, per_epoch, args.out_dir, reference=args.reference, control=args.control,
                                  matched=matched, suite=args.suite)
    print(f"{len(runs)} study runs, {len(rows)} rows -> {written[-1]}")
    return 0


def run_scale_recipe(args: argparse.Namespace) -> int:
    from hcm.report.study import write_scaled_recipe

    weight = write_scaled_recipe(args.base, args.runs, args.out)
    print(f"scale control: L_id weight {weight:.6g} -> {args.out}")
    return 0
