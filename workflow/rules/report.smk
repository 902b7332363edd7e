# aggregate (all runs -> results.csv and companions; the jobs' benchmark files -> jobs.csv) and
# report (tables, among them the compute table, figures, README).


rule aggregate:
    input:
        metrics=[f"{run}/metrics.json" for run in main_runs()],
        benchmarks=benchmark_files(),
    output:
        **aggregate_outputs(),
    log:
        f"{RES}/logs/aggregate.log",
    params:
        out_dir=lambda w, output: os.path.dirname(output.results),
        runs=lambda w, input: " ".join(shlex.quote(os.path.dirname(m)) for m in input.metrics),
        benchmarks=lambda w, input: f"--benchmark-root {shlex.quote(benchmark_root())} "
        + " ".join(f"--benchmark {shlex.quote(b)}" for b in input.benchmarks),
    threads: rule_resources("report")["threads"]
    resources:
        mem_mb=rule_resources("report")["mem_mb"],
        runtime=rule_resources("report")["runtime"],
    conda:
        CONDA_ENV
    shell:
        "hcm report aggregate --out-dir {params.out_dir} {params.benchmarks} {params.runs} > {log} 2>&1"


rule report:
    input:
        **aggregate_outputs(),
        published=local_path(PUBLISHED),
    output:
        readme=report(f"{REPORTS}/README.md", caption="../report/readme.rst", category="Index"),
        tables=[
            report(f"{TABLES}/{t}.{ext}", caption=f"../report/table_{t}.rst", category="Tables",
                   subcategory=t, labels={"table": t, "format": ext})
            for t in TABLE_NAMES for ext in ("md", "tex", "csv")
        ],
        cmc=[
            report(f"{FIGURES}/cmc_{d}.png", caption="../report/cmc.rst", category="Figures",
                   subcategory="CMC curves", labels={"figure": "CMC", "dataset": d})
            for d in DATASETS
        ],
        ablation=report(f"{FIGURES}/ablation.png", caption="../report/ablation.rst", category="Figures",
                        subcategory="Ablation", labels={"figure": "ablation", "dataset": "all"}),
        training=[
            report(f"{FIGURES}/training_{d}.png", caption="../report/training.rst", category="Figures",
                   subcategory="Training curves", labels={"figure": "training curves", "dataset": d})
            for d in DATASETS
        ],
    log:
        f"{RES}/logs/report.log",
    params:
        suite=SUITE,
        tables=lambda w, input: os.path.dirname(input.results),
        figures=lambda w, output: os.path.dirname(output.ablation),
        datasets=" ".join(DATASETS),
    threads: rule_resources("report")["threads"]
    resources:
        mem_mb=rule_resources("report")["mem_mb"],
        runtime=rule_resources("report")["runtime"],
    conda:
        CONDA_ENV
    shell:
        "hcm report build --tables {params.tables} --figures {params.figures} "
        "--readme {output.readme} --suite {params.suite} --published {input.published} "
        "--datasets {params.datasets} --no-progress > {log} 2>&1"
