# MLflow: one rule creates the store and the suite's experiment; one collecting rule logs
# every finished run directory (training jobs never touch the store, so SQLite sees one
# writer at a time; `hcm track` also locks a SQLite store against other logging jobs).


rule mlflow_init:
    output:
        f"{RES}/mlflow/experiment.json",
    log:
        f"{RES}/logs/mlflow_init.log",
    params:
        uri=shlex.quote(tracking_uri()),
        artifacts=artifact_args(),
        suite=SUITE,
    conda:
        CONDA_ENV
    shell:
        "hcm track init --tracking-uri {params.uri} {params.artifacts} "
        "--suite {params.suite} --out {output} > {log} 2>&1"


rule track:
    input:
        experiment=f"{RES}/mlflow/experiment.json",
        metrics=[f"{run}/metrics.json" for run in main_runs()],
    output:
        f"{RES}/mlflow/runs.csv",
    log:
        f"{RES}/logs/track.log",
    params:
        uri=shlex.quote(tracking_uri()),
        artifacts=artifact_args(),
        suite=SUITE,
        base=lambda w, input: os.path.dirname(os.path.dirname(input.experiment)),
        runs=lambda w, input: " ".join(shlex.quote(os.path.dirname(m)) for m in input.metrics),
    threads: rule_resources("report")["threads"]
    resources:
        mem_mb=rule_resources("report")["mem_mb"],
        runtime=rule_resources("report")["runtime"],
    conda:
        CONDA_ENV
    shell:
        "hcm track log --tracking-uri {params.uri} {params.artifacts} "
        "--suite {params.suite} --base {params.base} --group runs --out {output} {params.runs} > {log} 2>&1"
