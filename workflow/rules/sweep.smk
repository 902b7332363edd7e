# Sensitivity sweep (target `sweep`, not part of the default run): on the suite's sweep
# dataset, one knob varied at a time (all others at the recipe's values), every value x
# seed trained and evaluated (in the train job) like a main run; one figure per knob under reports/.../sweep/.


use rule train as train_sweep with:
    input:
        unpack(lambda w: train_inputs(SWEEP["dataset"])),
    output:
        summary=f"{RES}/sweep/{{dataset}}/{{knob}}={{value}}/seed{{seed}}/train_summary.json",
        model=f"{RES}/sweep/{{dataset}}/{{knob}}={{value}}/seed{{seed}}/model.pt",
        epochs=f"{RES}/sweep/{{dataset}}/{{knob}}={{value}}/seed{{seed}}/epochs.csv",
        metrics=f"{RES}/sweep/{{dataset}}/{{knob}}={{value}}/seed{{seed}}/metrics.json",
        plot=f"{RES}/sweep/{{dataset}}/{{knob}}={{value}}/seed{{seed}}/cmc.png",
    log:
        f"{RES}/logs/sweep/train/{{dataset}}/{{knob}}={{value}}/seed{{seed}}.log",
    benchmark:
        f"{RES}/benchmarks/sweep/train/{{dataset}}/{{knob}}={{value}}/seed{{seed}}.tsv"
    params:
        out_dir=lambda w, output: os.path.dirname(output.summary),
        sets=lambda w: train_sets(w.dataset, SWEEP.get("variant", "hcm"), w.seed, sweep_extra(w)),


rule sweep_report:
    input:
        metrics=lambda w: metrics_files(sweep_runs_by_knob()),
    output:
        readme=f"{SWEEP_REPORTS}/README.md",
        csv=f"{SWEEP_REPORTS}/sensitivity.csv",
        table=f"{SWEEP_REPORTS}/sensitivity.md",
        figures=[
            report(f"{SWEEP_REPORTS}/sensitivity_{k}.png", caption="../report/sensitivity.rst",
                   category="Sensitivity", labels={"knob": k})
            for k in KNOBS
        ],
    log:
        f"{RES}/logs/sweep_report.log",
    params:
        suite=SUITE,
        out_dir=lambda w, output: os.path.dirname(output.readme),
        knobs=lambda w: knob_args(sweep_runs_by_knob()),
        recipe=lambda w: shlex.quote(recipe_path(S["datasets"][SWEEP["dataset"]]["recipe"])),
        sets=lambda w: train_sets(SWEEP["dataset"], SWEEP.get("variant", "hcm"), 0),
    threads: rule_resources("report")["threads"]
    resources:
        mem_mb=rule_resources("report")["mem_mb"],
        runtime=rule_resources("report")["runtime"],
    conda:
        CONDA_ENV
    shell:
        "hcm report sweep --out-dir {params.out_dir} --suite {params.suite} --recipe {params.recipe} "
        "{params.sets} {params.knobs} > {log} 2>&1"


rule track_sweep:
    input:
        experiment=f"{RES}/mlflow/experiment.json",
        metrics=lambda w: metrics_files(sweep_runs_by_knob()),
    output:
        f"{RES}/mlflow/sweep_runs.csv",
    log:
        f"{RES}/logs/track_sweep.log",
    params:
        uri=shlex.quote(tracking_uri()),
        artifacts=artifact_args(),
        suite=SUITE,
        base=lambda w, input: os.path.dirname(os.path.dirname(input.experiment)),
        runs=lambda w, input: " ".join(shlex.quote(os.path.dirname(m)) for m in input.metrics),
        group="sweep",
    threads: rule_resources("report")["threads"]
    resources:
        mem_mb=rule_resources("report")["mem_mb"],
        runtime=rule_resources("report")["runtime"],
    conda:
        CONDA_ENV
    shell:
        "hcm track log --tracking-uri {params.uri} {params.artifacts} "
        "--suite {params.suite} --base {params.base} --group {params.group} --out {output} {params.runs} > {log} 2>&1"
