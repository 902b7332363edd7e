# prepare: one index file per dataset (synthetic sets are generated on the way).


rule prepare:
    output:
        index=f"{RES}/data/{{dataset}}/index.csv",
        meta=f"{RES}/data/{{dataset}}/index.csv.json",
    log:
        f"{RES}/logs/prepare/{{dataset}}.log",
    benchmark:
        f"{RES}/benchmarks/prepare/{{dataset}}.tsv"
    params:
        root=lambda w: shlex.quote(data_root(w.dataset)),
        extra=" ".join(shlex.quote(a) for a in S.get("prepare_args", [])),
    threads: rule_resources("prepare")["threads"]
    resources:
        mem_mb=rule_resources("prepare")["mem_mb"],
        runtime=rule_resources("prepare")["runtime"],
        gpu=rule_resources("prepare")["gpu"],
    conda:
        CONDA_ENV
    shell:
        "hcm prepare {wildcards.dataset} --root {params.root} --out {output.index} "
        "{params.extra} > {log} 2>&1"
