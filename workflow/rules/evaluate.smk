# evaluate: score each run's reported checkpoint (model.pt) on its dataset's test split.


rule evaluate:
    input:
        summary=f"{RES}/runs/{{dataset}}/{{variant}}/seed{{seed}}/train_summary.json",
        model=f"{RES}/runs/{{dataset}}/{{variant}}/seed{{seed}}/model.pt",
        index=lambda w: index_path(w.dataset),
    output:
        metrics=f"{RES}/runs/{{dataset}}/{{variant}}/seed{{seed}}/metrics.json",
        plot=f"{RES}/runs/{{dataset}}/{{variant}}/seed{{seed}}/cmc.png",
    log:
        f"{RES}/logs/evaluate/{{dataset}}/{{variant}}/seed{{seed}}.log",
    params:
        run=lambda w, input: os.path.dirname(input.summary),
        sets=lambda w: sets([f"runtime.device={config['device']}"]),
    threads: rule_resources("evaluate")["threads"]
    resources:
        mem_mb=rule_resources("evaluate")["mem_mb"],
        runtime=rule_resources("evaluate")["runtime"],
        gpu=rule_resources("evaluate")["gpu"],
    conda:
        CONDA_ENV
    shell:
        "hcm evaluate --run {params.run} --out {output.metrics} --plot {output.plot} "
        "{params.sets} --set runtime.threads={threads} > {log} 2>&1"
