# Path plumbing shared by all rules: the selected suite, where its files live, and the
# `--set` overrides each `hcm` call receives. No computation happens here.

import os
import re
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate


validate(config, schema="../config/config.schema.yaml")

SUITE = config["suite"]
if SUITE not in config["suites"]:
    raise WorkflowError(
        f"config: suite={SUITE!r} is not defined; choose one of {', '.join(config['suites'])} "
        "(e.g. --config suite=synthetic) or add it under `suites:` in workflow/config/config.yaml"
    )
S = config["suites"][SUITE]

RESULTS = config["results_dir"].rstrip("/")
RES = f"{RESULTS}/{SUITE}"
REPORTS = S["reports_dir"].rstrip("/")
TABLES = f"{REPORTS}/tables"
FIGURES = f"{REPORTS}/figures"
SWEEP_REPORTS = f"{REPORTS}/sweep"
STUDY_REPORTS = f"{REPORTS}/study"

DATASETS = list(S["datasets"])
VARIANTS = list(S["variants"]) + [v for v in S.get("reference", []) if v not in S["variants"]]
PLUGINS = list(S.get("plugins", []))
SEEDS = [int(s) for s in S["seeds"]]
PRETRAIN = S.get("pretrain") or None
SWEEP = S.get("sweep") or None
if SWEEP and SWEEP["dataset"] not in S["datasets"]:
    raise WorkflowError(
        f"config: suites.{SUITE}.sweep.dataset={SWEEP['dataset']!r} is not one of the suite's datasets "
        f"({', '.join(S['datasets'])}); the sweep uses that dataset's recipe and data"
    )
KNOBS = list(SWEEP["knobs"]) if SWEEP else []
STUDY = S.get("study") or None
STUDY_ROWS = dict(STUDY["rows"]) if STUDY else {}


def _check_study():
    """The study's datasets are the suite's, its references and scale sources are its rows."""
    if not STUDY:
        return
    where = f"suites.{SUITE}.study"
    for d in STUDY["datasets"]:
        if d not in S["datasets"]:
            raise WorkflowError(f"config: {where}.datasets: {d!r} is not one of the suite's datasets "
                                f"({', '.join(S['datasets'])}); the study uses that dataset's recipe and data")
    for key in ("reference", "control"):
        if STUDY.get(key) and STUDY[key] not in STUDY_ROWS:
            raise WorkflowError(f"config: {where}.{key}={STUDY[key]!r} is not one of the study's rows "
                                f"({', '.join(STUDY_ROWS)})")
    for name, row in STUDY_ROWS.items():
        source = row.get("scale_from")
        if source is not None and (source not in STUDY_ROWS or source == name or STUDY_ROWS[source].get("scale_from")):
            raise WorkflowError(f"config: {where}.rows.{name}.scale_from={source!r} must name another row "
                                "that trains without scale_from (its runs' logged L_id gradient scale is copied)")
        control = row.get("control")
        if control is not None and (control not in STUDY_ROWS or not STUDY_ROWS[control].get("scale_from")
                                    or row.get("scale_from")):
            raise WorkflowError(f"config: {where}.rows.{name}.control={control!r} must name a scale control "
                                "(a row with scale_from), and only on a row that is not a control itself")


_check_study()
DATA_SOURCES = DATASETS + ([PRETRAIN["source"]] if PRETRAIN and PRETRAIN["source"] not in DATASETS else [])

REPO = Path(workflow.basedir)
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def _hcm_registries():
    """Ask hcm (with the suite's plugins) which variants and datasets exist: nothing is repeated here."""
    from hcm.data.registry import get_spec
    from hcm.errors import HCMError
    from hcm.plugins import load_plugins
    from hcm.variants import VARIANTS as REGISTERED

    try:
        load_plugins(PLUGINS, source=f"suites.{SUITE}.plugins")
    except HCMError as exc:
        raise WorkflowError(f"config: {exc}") from None
    unknown = [v for v in [*VARIANTS, *(r["variant"] for r in STUDY_ROWS.values())] if v not in REGISTERED]
    if unknown:
        raise WorkflowError(
            f"config: suites.{SUITE} names unknown variant(s) {', '.join(unknown)}; registered: "
            f"{', '.join(REGISTERED.names())} (a variant of your own: list its module under the suite's plugins)"
        )
    return get_spec


dataset_spec = _hcm_registries()
PUBLISHED = REPO / "hcm" / "resources" / "published_results.csv"
CONDA_ENV = "../envs/hcm.yaml"


def _alternatives(names):
    return "|".join(re.escape(str(n)) for n in names)


wildcard_constraints:
    dataset=_alternatives(DATA_SOURCES),
    variant=_alternatives(VARIANTS),
    seed=r"\d+",
    source=_alternatives([PRETRAIN["source"]]) if PRETRAIN else r"(?!x)x",
    knob=_alternatives(KNOBS) if KNOBS else r"(?!x)x",
    row=_alternatives(STUDY_ROWS) if STUDY_ROWS else r"(?!x)x",
    value=r"[^/]+",


# ------------------------------------------------------------------ how to call hcm


def _uses_conda():
    methods = getattr(getattr(workflow, "deployment_settings", None), "deployment_method", ()) or ()
    return any(getattr(m, "name", str(m)).lower() == "conda" for m in methods)


def hcm_function():
    """A shell function `hcm` that runs `python -m hcm` with this repository first on PYTHONPATH.

    The interpreter is config `python`, else `python` from the rule's conda env under
    --use-conda, else the interpreter running snakemake (so a venv need not be activated).
    Defined in the shell prefix, not in params: moving the repository or the venv must not
    make Snakemake re-run every job.
    """
    python = config.get("python") or ("python" if _uses_conda() else sys.executable)
    plugins = f"HCM_PLUGINS={shlex.quote(','.join(PLUGINS))} " if PLUGINS else ""
    pythonpath = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    return f'hcm() {{{{ {plugins}PYTHONPATH={shlex.quote(pythonpath)} {shlex.quote(python)} -m hcm "$@"; }}}}; '


shell.prefix(f"set -euo pipefail; {hcm_function()}")


def rule_resources(step):
    """threads / mem_mb / runtime (minutes) / gpu of a step, from the suite's `resources`."""
    res = dict(S["resources"][step])
    res.setdefault("gpu", 0)
    return res


def local_path(path):
    """A path relative to the working directory when it lies below it (shorter logs), else absolute."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def sets(items):
    """`--set KEY=VALUE` arguments, shell-quoted."""
    return " ".join(f"--set {shlex.quote(str(item))}" for item in items)


# ------------------------------------------------------------------ data


def check_external_data():
    """Fail early, with the folders looked for, when a real dataset is missing under data_root."""
    if S["data"] != "external":
        return
    root = Path(config["data_root"])
    if not root.is_dir():
        raise WorkflowError(
            f"data_root={config['data_root']!r} is not a folder; put the datasets there or pass "
            f"--config data_root=/path/to/datasets (suite {SUITE})"
        )
    for name in DATA_SOURCES:
        try:
            folders = [*dataset_spec(name).folder_names, name]
        except Exception as exc:  # hcm.errors.DatasetError: an unknown name
            raise WorkflowError(f"config: suites.{SUITE}.datasets: {exc}") from None
        if not any((root / f).is_dir() for f in folders):
            looked = ", ".join(str(root / f) for f in folders)
            raise WorkflowError(
                f"dataset {name} not found under data_root={config['data_root']!r} (looked for {looked}); "
                "see docs/datasets.md for the expected layout"
            )


check_external_data()


def index_path(dataset):
    return f"{RES}/data/{dataset}/index.csv"


def data_root(dataset):
    """Where `hcm prepare` finds (external) or creates (generated) the dataset."""
    if S["data"] == "external":
        return config["data_root"]
    return f"{RES}/data/{dataset}"


def recipe_path(name):
    path = Path(name)
    if not path.is_absolute():
        path = REPO / config["recipes_dir"] / path
    return local_path(path)


# ------------------------------------------------------------------ pretraining and runs


def pretrain_checkpoint():
    return f"{RES}/pretrain/{PRETRAIN['source']}/checkpoint.pt" if PRETRAIN else None


def weights():
    return pretrain_checkpoint() or S.get("weights", "imagenet")


def run_dir(dataset, variant, seed):
    return f"{RES}/runs/{dataset}/{variant}/seed{seed}"


def sweep_dir(knob, value, seed):
    return f"{RES}/sweep/{SWEEP['dataset']}/{knob}={value}/seed{seed}"


def main_runs():
    return [run_dir(d, v, s) for d in DATASETS for v in VARIANTS for s in SEEDS]


def sweep_runs_by_knob():
    return {k: [sweep_dir(k, v, s) for v in SWEEP["knobs"][k] for s in SWEEP.get("seeds", [0])] for k in KNOBS}


def metrics_files(groups):
    """`metrics.json` of every run of `groups` (name -> run directories: a sweep's knobs, a study's rows)."""
    return [f"{run}/metrics.json" for runs in groups.values() for run in runs]


def study_dir(dataset, row, seed):
    return f"{RES}/study/{dataset}/{row}/seed{seed}"


def study_runs_by_row():
    return {row: [study_dir(d, row, s) for d in STUDY["datasets"] for s in STUDY["seeds"]] for row in STUDY_ROWS}


def scale_recipe(dataset, row, seed):
    """The recipe a scale-control row trains with (written by rule study_scale)."""
    return f"{RES}/study/{dataset}/{row}/seed{seed}.scale.yaml"


def study_inputs(wildcards):
    """A study run's inputs: a main run's, with the scale-control recipe in place of the recipe."""
    inputs = train_inputs(wildcards.dataset)
    if STUDY_ROWS[wildcards.row].get("scale_from"):
        inputs["recipe"] = scale_recipe(wildcards.dataset, wildcards.row, wildcards.seed)
    return inputs


def study_extra(wildcards):
    return [*STUDY.get("overrides", []), *STUDY_ROWS[wildcards.row].get("overrides", [])]


def train_inputs(dataset):
    inputs = {"recipe": recipe_path(S["datasets"][dataset]["recipe"]), "index": index_path(dataset)}
    if PRETRAIN:
        inputs["weights"] = pretrain_checkpoint()
    return inputs


def train_sets(dataset, variant, seed, extra=()):
    """The overrides of one training run (the recipe gives everything else)."""
    return sets([
        f"seed={seed}", f"variant={variant}", f"dataset.name={dataset}",
        f"dataset.root={data_root(dataset)}", f"dataset.index={index_path(dataset)}",
        f"model.weights={weights()}", f"runtime.device={config['device']}",
        *([f"plugins=[{','.join(PLUGINS)}]"] if PLUGINS else []),
        *S.get("overrides", []), *S["datasets"][dataset].get("overrides", []), *extra,
    ])


def sweep_extra(wildcards):
    return [f"{wildcards.knob}={wildcards.value}"]


# ------------------------------------------------------------------ reports and tracking


def tracking_uri():
    return config.get("mlflow", {}).get("tracking_uri") or f"sqlite:///{RESULTS}/mlflow.db"


def artifact_args():
    """`--artifact-root DIR` when configured; otherwise `hcm track` picks <db folder>/mlartifacts/<suite>
    for a SQLite store and leaves the choice to the server for any other store."""
    root = config.get("mlflow", {}).get("artifact_root")
    return f"--artifact-root {shlex.quote(root)}" if root else ""


def aggregate_outputs():
    return {name: f"{TABLES}/{name}.csv" for name in ("results", "cmc", "curves", "runs", "jobs")}


TABLE_NAMES = ("main", "ablation", "published", "compute")


def table_outputs():
    return [f"{TABLES}/{t}.{ext}" for t in TABLE_NAMES for ext in ("md", "tex", "csv")]


def benchmark_root():
    return f"{RES}/benchmarks"


def benchmark_files():
    """The benchmark files of the suite's main jobs (prepare, pretrain, train): the compute table's input."""
    files = [f"{benchmark_root()}/prepare/{d}.tsv" for d in DATA_SOURCES]
    if PRETRAIN:
        files.append(f"{benchmark_root()}/pretrain/{PRETRAIN['source']}.tsv")
    return files + [f"{benchmark_root()}/train/{d}/{v}/seed{s}.tsv" for d in DATASETS for v in VARIANTS for s in SEEDS]


def figure_outputs():
    return (
        [f"{FIGURES}/cmc_{d}.png" for d in DATASETS]
        + [f"{FIGURES}/ablation.png"]
        + [f"{FIGURES}/training_{d}.png" for d in DATASETS]
    )


def report_outputs():
    return [f"{REPORTS}/README.md", *table_outputs(), *figure_outputs(), *aggregate_outputs().values()]


def sweep_report_outputs():
    if not SWEEP:
        raise WorkflowError(f"suite {SUITE} has no `sweep:` section in the workflow config; add one to run the sweep")
    return [f"{SWEEP_REPORTS}/README.md", f"{SWEEP_REPORTS}/sensitivity.csv", f"{SWEEP_REPORTS}/sensitivity.md",
            *[f"{SWEEP_REPORTS}/sensitivity_{k}.png" for k in KNOBS]]


def study_report_outputs():
    if not STUDY:
        raise WorkflowError(f"suite {SUITE} has no `study:` section in the workflow config; add one to run the study")
    return [f"{STUDY_REPORTS}/{name}" for name in ("README.md", "study.csv", "study.md", "diagnostics.csv",
                                                   "diagnostics.md", "study.png", "diagnostics.png", "readings.png")]


def knob_args(groups):
    """`--knob KNOB RUN_DIR ...` per knob, for `hcm report sweep`."""
    return " ".join(f"--knob {shlex.quote(k)} " + " ".join(map(shlex.quote, runs)) for k, runs in groups.items())


def matched_control_args():
    """`--matched-control ROW=CONTROL` for each study row that is some control's `scale_from` and each row
    that names its `control`."""
    pairs = [(row["scale_from"], name) for name, row in STUDY_ROWS.items() if row.get("scale_from")]
    pairs += [(name, row["control"]) for name, row in STUDY_ROWS.items() if row.get("control")]
    return " ".join(f"--matched-control {shlex.quote(f'{src}={ctrl}')}" for src, ctrl in pairs)


def row_args(groups):
    """`--row ROW RUN_DIR ...` per study row, for `hcm report study`."""
    return " ".join(f"--row {shlex.quote(r)} " + " ".join(map(shlex.quote, runs)) for r, runs in groups.items())
