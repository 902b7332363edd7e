# Readings study (target `study`, not part of the default run; docs/workflow.md, "The readings
# study"): on the study's datasets, every row (a variant plus overrides: HCM's readings of the
# dynamic factor in the full and identity-only forms, the memory rules, the references and the
# scale control) x seed, trained and scored like a main run with the study's overrides (4x the
# iterations, a validation split). A scale-control row trains with a recipe whose L_id weight
# is the mean effective gradient scale logged by its `scale_from` row's run of the same dataset
# and seed (rule study_scale), so it runs after that run. Resumable like every train job.


use rule train as train_study with:
    input:
        unpack(study_inputs),
    output:
        summary=f"{RES}/study/{{dataset}}/{{row}}/seed{{seed}}/train_summary.json",
        model=f"{RES}/study/{{dataset}}/{{row}}/seed{{seed}}/model.pt",
        epochs=f"{RES}/study/{{dataset}}/{{row}}/seed{{seed}}/epochs.csv",
        metrics=f"{RES}/study/{{dataset}}/{{row}}/seed{{seed}}/metrics.json",
        plot=f"{RES}/study/{{dataset}}/{{row}}/seed{{seed}}/cmc.png",
    log:
        f"{RES}/logs/study/train/{{dataset}}/{{row}}/seed{{seed}}.log",
    benchmark:
        f"{RES}/benchmarks/study/train/{{dataset}}/{{row}}/seed{{seed}}.tsv"
    params:
        out_dir=lambda w, output: os.path.dirname(output.summary),
        sets=lambda w: train_sets(w.dataset, STUDY_ROWS[w.row]["variant"], w.seed, study_extra(w)),


rule study_scale:
    input:
        recipe=lambda w: recipe_path(S["datasets"][w.dataset]["recipe"]),
        epochs=lambda w: f"{study_dir(w.dataset, STUDY_ROWS[w.row]['scale_from'], w.seed)}/epochs.csv",
    output:
        f"{RES}/study/{{dataset}}/{{row}}/seed{{seed}}.scale.yaml",
    log:
        f"{RES}/logs/study/scale/{{dataset}}/{{row}}/seed{{seed}}.log",
    params:
        source=lambda w, input: shlex.quote(os.path.dirname(input.epochs)),
    conda:
        CONDA_ENV
    shell:
        "hcm report scale-recipe --base {input.recipe} --out {output} {params.source} > {log} 2>&1"


rule study_report:
    input:
        metrics=lambda w: metrics_files(study_runs_by_row()),
    output:
        readme=f"{STUDY_REPORTS}/README.md",
        csv=f"{STUDY_REPORTS}/study.csv",
        table=f"{STUDY_REPORTS}/study.md",
        diagnostics=f"{STUDY_REPORTS}/diagnostics.csv",
        diagnostics_table=f"{STUDY_REPORTS}/diagnostics.md",
        figure=report(f"{STUDY_REPORTS}/study.png", caption="../report/study.rst", category="Readings study"),
        diagnostics_figure=report(f"{STUDY_REPORTS}/diagnostics.png", caption="../report/study.rst",
                                  category="Readings study"),
        readings_figure=report(f"{STUDY_REPORTS}/readings.png", caption="../report/study.rst",
                               category="Readings study"),
    log:
        f"{RES}/logs/study_report.log",
    params:
        suite=SUITE,
        out_dir=lambda w, output: os.path.dirname(output.readme),
        rows=lambda w: row_args(study_runs_by_row()),
        reference=lambda w: shlex.quote(STUDY["reference"]),
        control=lambda w: f"--control {shlex.quote(STUDY['control'])}" if STUDY.get("control") else "",
        matched=lambda w: matched_control_args(),
    threads: rule_resources("report")["threads"]
    resources:
        mem_mb=rule_resources("report")["mem_mb"],
        runtime=rule_resources("report")["runtime"],
    conda:
        CONDA_ENV
    shell:
        "hcm report study --out-dir {params.out_dir} --suite {params.suite} --reference {params.reference} "
        "{params.control} {params.matched} {params.rows} > {log} 2>&1"


# The study's runs in the suite's MLflow experiment, tagged group=study (as the sweep's are group=sweep).
use rule track_sweep as track_study with:
    input:
        experiment=f"{RES}/mlflow/experiment.json",
        metrics=lambda w: metrics_files(study_runs_by_row()),
    output:
        f"{RES}/mlflow/study_runs.csv",
    log:
        f"{RES}/logs/track_study.log",
    params:
        group="study",
