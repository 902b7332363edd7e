"""Tables derived from ``results.csv``: main, ablation, published-vs-ours; each as Markdown, LaTeX and CSV.

Every table is computed from the tidy results (one row per dataset, variant, seed;
metrics in percent) by :func:`summarise` (mean and sample standard deviation over
seeds). Cells read ``mean ± std``; a single seed shows the mean alone. In the main
table the best unsupervised mean per column is bold; reference rows (supervised,
untrained) are set apart and never bold.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from hcm.report.aggregate import write_csv
from hcm.report.style import (
    METRIC_LABELS,
    TABLE_METRICS,
    ablation_variants,
    dataset_label,
    is_reference,
    order_datasets,
    order_variants,
    unsupervised_variants,
    variant_label,
)
from hcm.utils.io import atomic_write_text
from hcm.variants import components_of, get_variant

DASH = "–"
NOT_AVAILABLE = "not available"


@dataclass(frozen=True)
class Table:
    """A derived table: tidy ``data`` for the CSV and rendered Markdown / LaTeX text."""

    name: str
    caption: str
    data: pd.DataFrame
    markdown: str
    latex: str


# ------------------------------------------------------------------ statistics


def summarise(results: pd.DataFrame, metrics: Sequence[str] = TABLE_METRICS) -> pd.DataFrame:
    """Mean, sample std (ddof=1; NaN for one seed) and seed count per (dataset, variant, metric)."""
    long = results.melt(id_vars=["dataset", "variant", "seed"], value_vars=list(metrics),
                        var_name="metric", value_name="value")
    grouped = long.groupby(["dataset", "variant", "metric"], sort=False)["value"]
    out = grouped.agg(mean="mean", std=lambda s: s.std(ddof=1), n="count").reset_index()
    return out


def lookup(summary: pd.DataFrame) -> dict[tuple[str, str, str], tuple[float, float, int]]:
    """(dataset, variant, metric) -> (mean, std, n)."""
    return {(r.dataset, r.variant, r.metric): (r.mean, r.std, int(r.n)) for r in summary.itertuples()}


# ------------------------------------------------------------------ cell formatting


def fmt_value(x: float, digits: int = 1) -> str:
    return DASH if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def fmt_delta(x: float | None, digits: int = 1) -> str:
    if x is None or math.isnan(x):
        return DASH
    s = f"{x:+.{digits}f}"
    return s.replace("-", "−")  # typographic minus


def fmt_mean_std(mean: float, std: float, n: int, *, latex: bool = False, digits: int = 1) -> str:
    if mean is None or math.isnan(mean):
        return DASH
    if n < 2 or std is None or math.isnan(std):
        return f"{mean:.{digits}f}"
    pm = r" $\pm$ " if latex else " ± "
    return f"{mean:.{digits}f}{pm}{std:.{digits}f}"


def bold(text: str, latex: bool) -> str:
    return rf"\textbf{{{text}}}" if latex else f"**{text}**"


_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "–": "--", "−": "$-$", "±": r"$\pm$", "✓": r"\checkmark", "Δ": r"$\Delta$", "δ": r"$\delta$"}


def latex_escape(text: str) -> str:
    """Escape LaTeX specials in plain text (labels, sources)."""
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in text)


# ------------------------------------------------------------------ rendering


def render_markdown(header: Sequence[str], rows: Sequence[Sequence[str]], align: str | None = None) -> str:
    """A GitHub-flavoured Markdown table; ``align`` is one of l/c/r per column (default l then r)."""
    align = align or ("l" + "r" * (len(header) - 1))
    marks = {"l": ":---", "c": ":---:", "r": "---:"}

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", r"\|") for c in cells) + " |"

    out = [line(header), "|" + "|".join(marks[a] for a in align) + "|"]
    out += [line(row) for row in rows]
    return "\n".join(out) + "\n"


def render_latex(groups: Sequence[tuple[str, int]], header: Sequence[str], rows: Sequence[Sequence[str]],
                 caption: str, label: str, align: str, midrule_before: Sequence[int] = ()) -> str:
    """A booktabs table via pandas' Styler.to_latex, with a grouped (multicolumn) header.

    ``groups`` is a list of (group label, span) over the columns after the first ``len(header) -
    sum(spans)`` ungrouped ones; cells must already be LaTeX (escaped / marked up).
    """
    n_plain = len(header) - sum(span for _, span in groups)
    tuples = [("", h) for h in header[:n_plain]]
    pos = n_plain
    for g, span in groups:
        tuples += [(g, h) for h in header[pos:pos + span]]
        pos += span
    columns = pd.MultiIndex.from_tuples(tuples) if groups else pd.Index(list(header))
    frame = pd.DataFrame([list(r) for r in rows], columns=columns)
    styler = frame.style.hide(axis="index")
    text = styler.to_latex(
        column_format=align, hrules=True, multicol_align="c", caption=caption, label=label,
        position="t", position_float="centering",
    )
    if midrule_before:
        lines = text.splitlines()
        body_start = next(i for i, ln in enumerate(lines) if ln.strip() == r"\midrule") + 1
        for k in sorted(midrule_before, reverse=True):
            if 0 < k < len(rows):
                lines.insert(body_start + k, r"\midrule")
        text = "\n".join(lines) + "\n"
    if groups:
        # a rule under each group label, as booktabs tables print it
        col = n_plain + 1
        rules = []
        for _, span in groups:
            rules.append(rf"\cmidrule(lr){{{col}-{col + span - 1}}}")
            col += span
        lines = text.splitlines()
        first_header = next(i for i, ln in enumerate(lines) if ln.strip() == r"\toprule") + 1
        lines.insert(first_header + 1, " ".join(rules))
        text = "\n".join(lines) + "\n"
    return text


def write_table(table: Table, out_dir: str | Path) -> list[Path]:
    """Write ``<name>.md``, ``<name>.tex`` and ``<name>.csv`` into ``out_dir``."""
    out = Path(out_dir)
    md = f"{table.caption}\n\n{table.markdown}"
    return [
        atomic_write_text(out / f"{table.name}.md", md),
        atomic_write_text(out / f"{table.name}.tex", table.latex),
        write_csv(table.data, out / f"{table.name}.csv"),
    ]


# ------------------------------------------------------------------ tables


def _best_means(stats: dict, datasets: Sequence[str], variants: Sequence[str],
                metrics: Sequence[str]) -> dict[tuple[str, str], float]:
    best = {}
    unsupervised = set(unsupervised_variants())
    for d in datasets:
        for m in metrics:
            means = [stats[(d, v, m)][0] for v in variants if (d, v, m) in stats and v in unsupervised]
            means = [x for x in means if not math.isnan(x)]
            if len(means) > 1:
                best[(d, m)] = round(max(means), 1)
    return best


def main_table(results: pd.DataFrame, *, suite: str = "") -> Table:
    """Variant x dataset with mAP / R1 / R5 / R10, mean ± std over seeds."""
    summary = summarise(results)
    stats = lookup(summary)
    datasets = order_datasets(results["dataset"].unique())
    variants = order_variants(results["variant"].unique())
    best = _best_means(stats, datasets, variants, TABLE_METRICS)
    unsupervised = set(unsupervised_variants())
    n_seeds = results.groupby(["dataset", "variant"])["seed"].nunique()
    lo, hi = int(n_seeds.min()), int(n_seeds.max())
    seeds_text = (f"{lo} seed{'s' if lo != 1 else ''}" if lo == hi else f"{lo}–{hi} seeds")
    caption = (f"Main results{f' ({suite} suite)' if suite else ''}: mAP and CMC rank-1/5/10 in %, "
               f"mean ± std over {seeds_text}. Bold: best unsupervised variant per column; "
               "supervised and untrained are reference rows (upper and lower bound).")

    def cells(v: str, latex: bool) -> list[str]:
        out = []
        for d in datasets:
            for m in TABLE_METRICS:
                mean, std, n = stats.get((d, v, m), (math.nan, math.nan, 0))
                text = fmt_mean_std(mean, std, n, latex=latex)
                if v in unsupervised and not math.isnan(mean) and best.get((d, m)) == round(mean, 1):
                    text = bold(text, latex)
                out.append(text)
        return out

    first_ref = next((i for i, v in enumerate(variants) if is_reference(v)), None)
    seps = [first_ref] if first_ref else []
    md_header = ["Method"] + [f"{dataset_label(d)} {METRIC_LABELS[m]}" for d in datasets for m in TABLE_METRICS]
    markdown = render_markdown(md_header, [[_md_label(v), *cells(v, False)] for v in variants])
    latex = render_latex(
        [(latex_escape(dataset_label(d)), len(TABLE_METRICS)) for d in datasets],
        ["Method"] + [METRIC_LABELS[m] for _ in datasets for m in TABLE_METRICS],
        [[latex_escape(variant_label(v)), *cells(v, True)] for v in variants],
        caption=latex_escape(caption), label="tab:main", align="l" + "c" * len(datasets) * len(TABLE_METRICS),
        midrule_before=seps,
    )
    data = summary.assign(method=summary["variant"].map(variant_label))
    data = data[["dataset", "variant", "method", "metric", "mean", "std", "n"]].rename(columns={"n": "n_seeds"})
    return Table("main", caption, _sort(data), markdown, latex)


def ablation_table(results: pd.DataFrame, *, suite: str = "") -> Table:
    """HCM against its ablations and the baseline: components, mAP, Δ mAP to HCM, R1 per dataset."""
    summary = summarise(results, ("mAP", "rank1"))
    stats = lookup(summary)
    datasets = order_datasets(results["dataset"].unique())
    variants = [v for v in ablation_variants() if v in set(results["variant"])]
    components = components_of(variants)
    terms_text = ", ".join(f"{c.label} {c.description}".strip() for c in components)
    caption = (f"Ablation{f' ({suite} suite)' if suite else ''}: loss terms used ({terms_text}), mAP and "
               "rank-1 in % (mean ± std over seeds) and Δ mAP = variant − HCM (full), in points.")

    def uses(v: str) -> list[bool]:
        used = set(get_variant(v).components) if get_variant(v) else set()
        return [c.key in used for c in components]

    def delta(d: str, v: str, m: str) -> float:
        if (d, v, m) not in stats or (d, "hcm", m) not in stats:
            return math.nan
        return stats[(d, v, m)][0] - stats[(d, "hcm", m)][0]

    def row(v: str, latex: bool) -> list[str]:
        tick, no = (r"\checkmark", "--") if latex else ("✓", DASH)
        comps = [tick if c else no for c in uses(v)]
        label = latex_escape(variant_label(v)) if latex else variant_label(v)
        out = [label, *comps]
        for d in datasets:
            mean, std, n = stats.get((d, v, "mAP"), (math.nan, math.nan, 0))
            out.append(fmt_mean_std(mean, std, n, latex=latex))
            dm = delta(d, v, "mAP")
            out.append(("--" if latex else DASH) if v == "hcm"
                       else (latex_escape(fmt_delta(dm)) if latex else fmt_delta(dm)))
            mean, std, n = stats.get((d, v, "rank1"), (math.nan, math.nan, 0))
            out.append(fmt_mean_std(mean, std, n, latex=latex))
        return out

    comp_header = [c.label for c in components]
    md_header = ["Variant", *comp_header]
    for d in datasets:
        md_header += [f"{dataset_label(d)} mAP", f"{dataset_label(d)} Δ mAP", f"{dataset_label(d)} R1"]
    markdown = render_markdown(md_header, [row(v, False) for v in variants], align="l" + "c" * len(components) + "r" * 3 * len(datasets))
    latex = render_latex(
        [(latex_escape(dataset_label(d)), 3) for d in datasets],
        ["Variant", *(c.latex or latex_escape(c.label) for c in components)]
        + ["mAP", r"$\Delta$mAP", "R1"] * len(datasets),
        [row(v, True) for v in variants],
        caption=latex_escape(caption), label="tab:ablation", align="l" + "c" * len(components) + "c" * 3 * len(datasets),
    )
    rows = []
    comp_columns = [c.column for c in components]
    for v in variants:
        comps = dict(zip(comp_columns, uses(v), strict=True))
        for d in datasets:
            for m in ("mAP", "rank1"):
                if (d, v, m) not in stats:
                    continue
                mean, std, n = stats[(d, v, m)]
                rows.append({"variant": v, "method": variant_label(v), **comps, "dataset": d, "metric": m,
                             "mean": mean, "std": std, "n_seeds": n, "delta_vs_hcm": delta(d, v, m)})
    data = pd.DataFrame(rows, columns=["variant", "method", *comp_columns,
                                       "dataset", "metric", "mean", "std", "n_seeds", "delta_vs_hcm"])
    return Table("ablation", caption, _sort(data), markdown, latex)


def published_table(results: pd.DataFrame, published: pd.DataFrame, *, suite: str = "") -> Table:
    """Published numbers beside ours (mean over seeds) with the difference ours − published.

    Our number is shown for a published row whose ``variant`` names one of our variants and
    whose dataset we ran. HCM's published cells read "not available" until a user fills them.
    """
    summary = summarise(results)
    stats = lookup(summary)
    datasets = order_datasets(published["dataset"].unique())
    ran = set(results["dataset"])
    comparable = [d for d in datasets if d in ran]
    methods = list(dict.fromkeys(published["method"]))
    pub = {(r.method, r.dataset): r for r in published.itertuples()}
    method_variant = {r.method: r.variant for r in published.itertuples() if r.variant}
    mapped = [m for m in methods if m in method_variant]

    caption = (f"Published numbers (fully unsupervised, ResNet-50; mAP/R1/R5/R10 in %) beside this "
               f"project's{f' {suite}-suite' if suite else ''} results (mean over seeds) and the "
               "difference ours − published. Published Cluster Contrast numbers are the best of "
               "checkpoints scored on the test set every 10 epochs; ours report the final checkpoint "
               "(or the validation-selected one). HCM's published table could not be obtained: its "
               "row reads \"not available\" until filled in hcm/resources/published_results.csv.")
    if not comparable:
        caption += (" This suite's datasets are not the published ones, so no difference is shown; "
                    "run the paper suite (`--config suite=paper`) for a comparison.")

    def pub_cell(method: str, d: str) -> str:
        r = pub.get((method, d))
        if r is None or r.status == "not reported":
            return DASH
        if r.status == "not available":
            return NOT_AVAILABLE
        return "/".join(fmt_value(getattr(r, m)) for m in TABLE_METRICS)

    def ours(variant: str, d: str) -> list[float] | None:
        if d not in ran or any((d, variant, m) not in stats for m in TABLE_METRICS):
            return None
        return [stats[(d, variant, m)][0] for m in TABLE_METRICS]

    def ours_cell(variant: str, d: str) -> str:
        vals = ours(variant, d)
        return "not run" if vals is None else "/".join(fmt_value(x) for x in vals)

    def diff_cell(method: str, d: str) -> str:
        r = pub.get((method, d))
        vals = ours(method_variant[method], d)
        if r is None or r.status == "not reported":
            return DASH
        if r.status == "not available":
            return NOT_AVAILABLE
        if vals is None:
            return "not run"
        return "/".join(fmt_delta(o - getattr(r, m)) for o, m in zip(vals, TABLE_METRICS, strict=True))

    body: list[list[str]] = [[m, *[pub_cell(m, d) for d in datasets]] for m in methods]
    ours_rows: list[list[str]] = []
    if comparable:
        for m in mapped:
            v = method_variant[m]
            ours_rows.append([f"This project: {variant_label(v)}", *[ours_cell(v, d) for d in datasets]])
        for m in mapped:
            ours_rows.append([f"Δ {variant_label(method_variant[m])} − {m}", *[diff_cell(m, d) for d in datasets]])
    header = ["Method", *[dataset_label(d) for d in datasets]]
    all_rows = body + ours_rows
    seps = [len(body)] if ours_rows else []
    markdown = render_markdown(header, [[f"*{r[0]}*", *r[1:]] if i >= len(body) else r
                                        for i, r in enumerate(all_rows)])
    latex = render_latex(
        [], [latex_escape(h) for h in header], [[latex_escape(c) for c in r] for r in all_rows],
        caption=latex_escape(caption + " Cells: mAP/R1/R5/R10."), label="tab:published",
        align="l" + "c" * len(datasets), midrule_before=seps,
    )
    rows = []
    for r in published.itertuples():
        for m in TABLE_METRICS:
            v = r.variant if isinstance(r.variant, str) and r.variant else None
            o = stats.get((r.dataset, v, m)) if v else None
            ours_mean = o[0] if o else math.nan
            rows.append({"method": r.method, "variant": v or "", "dataset": r.dataset, "metric": m,
                         "published": getattr(r, m), "status": r.status, "ours_mean": ours_mean,
                         "ours_std": o[1] if o else math.nan, "ours_n_seeds": o[2] if o else 0,
                         "difference": ours_mean - getattr(r, m), "source": r.source})
    data = pd.DataFrame(rows, columns=["method", "variant", "dataset", "metric", "published", "status",
                                       "ours_mean", "ours_std", "ours_n_seeds", "difference", "source"])
    return Table("published", caption, data, markdown, latex)


def _md_label(variant: str) -> str:
    """Reference rows in italics (Markdown has no mid-table rule)."""
    label = variant_label(variant)
    return f"*{label}*" if is_reference(variant) else label


def _sort(df: pd.DataFrame) -> pd.DataFrame:
    if df.empty:
        return df
    d_rank = {d: i for i, d in enumerate(order_datasets(df["dataset"].unique()))}
    v_rank = {v: i for i, v in enumerate(order_variants(df["variant"].unique()))}
    m_rank: Callable[[str], int] = lambda m: list(TABLE_METRICS).index(m) if m in TABLE_METRICS else 99  # noqa: E731
    out = df.assign(_v=df["variant"].map(v_rank), _d=df["dataset"].map(d_rank), _m=df["metric"].map(m_rank))
    return out.sort_values(["_v", "_d", "_m"], kind="stable").drop(columns=["_v", "_d", "_m"]).reset_index(drop=True)
