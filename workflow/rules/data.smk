# prepare: one index file per dataset (synthetic sets are generated on the way).


rule prepare:
    output:
        index=f"{RES}/data/{{dataset}}/index.csv",
        meta=f"{RES}/data/{{dataset}}/index.csv.json",
    log:
        f"{RES}/logs/prepare/{{dataset}}.log",
    params:
        name=lambda w: w.dataset,
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
        "hcm prepare {params.name} --root {params.root} --out {output.index} "
        "{params.extra} > {log} 2>&1"


# The pretraining source is prepared first: pretraining, which every run waits for, can then
# start while the benchmark sets are still being prepared (Snakemake otherwise picks the
# prepare jobs in any order; the source came last, leaving a core idle for ~35 s).
use rule prepare as prepare_source with:
    output:
        index=f"{RES}/data/{{source}}/index.csv",
        meta=f"{RES}/data/{{source}}/index.csv.json",
    log:
        f"{RES}/logs/prepare/{{source}}.log",
    params:
        name=lambda w: w.source,
        root=lambda w: shlex.quote(data_root(w.source)),
        extra=" ".join(shlex.quote(a) for a in S.get("prepare_args", [])),
    priority: 10


ruleorder: prepare_source > prepare
