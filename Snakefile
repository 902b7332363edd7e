"""One command reproduces everything: data -> pretraining -> training -> evaluation -> reports + MLflow.

    snakemake --cores all                                           # the default (synthetic) suite
    snakemake --cores all --config suite=paper data_root=/datasets  # the four real datasets
    snakemake sweep --cores all                                     # sensitivity sweep (not in the default)
    snakemake study --cores all                                     # readings study (not in the default)

Configuration: workflow/config/config.yaml (schema: workflow/config/config.schema.yaml).
Rules call the `hcm` command line (`python -m hcm ...`); see docs/workflow.md.
"""

import os

from snakemake.utils import min_version

min_version("8.10")


configfile: os.path.join(workflow.basedir, "workflow", "config", "config.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/track.smk"
include: "workflow/rules/sweep.smk"
include: "workflow/rules/study.smk"


localrules:
    all,
    sweep,
    aggregate,
    report,
    mlflow_init,
    track,
    sweep_report,
    track_sweep,
    study,
    study_scale,
    study_report,


# Every run's metrics.json is a target too: Snakemake does not rebuild a deleted
# intermediate file while the files made from it are up to date, so without this,
# deleting one run directory would not re-run that run.
rule all:
    default_target: True
    input:
        report_outputs(),
        f"{RES}/mlflow/runs.csv",
        [f"{run}/metrics.json" for run in main_runs()],


rule sweep:
    input:
        lambda w: [
            *sweep_report_outputs(),
            f"{RES}/mlflow/sweep_runs.csv",
            *metrics_files(sweep_runs_by_knob()),
        ],


rule study:
    input:
        lambda w: [
            *study_report_outputs(),
            f"{RES}/mlflow/study_runs.csv",
            *metrics_files(study_runs_by_row()),
        ],
