# pretrain (once per suite, when the suite asks for it) and train (dataset x variant x seed).
#
# A train job also scores its reported checkpoint on the test split (`hcm train --evaluate`,
# the code of `hcm evaluate --run`) and writes metrics.json and cmc.png: evaluating in a job
# of its own cost a second start of Python + torch + torchvision (~10 s on 2 CPU cores) per
# run, a sixth of the default suite's time. Deleting a run's metrics.json re-runs its train
# job, which resumes from checkpoints/last.pt and only evaluates again.
#
# Each job's wall time, CPU time and peak memory go to <results>/<suite>/benchmarks/<rule>/...tsv
# (Snakemake's `benchmark:`); `hcm report aggregate` collects them into jobs.csv, the report's compute table.
#
# Both continue an interrupted run from its last checkpoint (--resume). The run's
# config.yaml is deliberately not a declared output: Snakemake deletes declared outputs
# before re-running a job, and `hcm train --resume` compares the stored config.yaml with
# the new one, refusing to continue a checkpoint trained under a different config.
#
# A run that finished without training (exit 3: status not_trained or diverged in its
# train_summary.json, docs/errors.md) still wrote and scored its outputs: the train job
# accepts that status, so the run reaches the tables and the report README's "Runs that did
# not train" line instead of Snakemake deleting its record. Any other failure fails the job.


rule pretrain:
    input:
        recipe=lambda w: recipe_path(PRETRAIN["recipe"]),
        index=lambda w: index_path(w.source),
    output:
        checkpoint=f"{RES}/pretrain/{{source}}/checkpoint.pt",
        summary=f"{RES}/pretrain/{{source}}/summary.json",
    log:
        f"{RES}/logs/pretrain/{{source}}.log",
    benchmark:
        f"{RES}/benchmarks/pretrain/{{source}}.tsv"
    params:
        out_dir=lambda w, output: os.path.dirname(output.checkpoint),
        sets=lambda w: sets([
            f"seed={PRETRAIN.get('seed', 0)}", f"dataset.name={w.source}", f"dataset.root={data_root(w.source)}",
            f"dataset.index={index_path(w.source)}", f"runtime.device={config['device']}",
        ]),
    threads: rule_resources("pretrain")["threads"]
    resources:
        mem_mb=rule_resources("pretrain")["mem_mb"],
        runtime=rule_resources("pretrain")["runtime"],
        gpu=rule_resources("pretrain")["gpu"],
    conda:
        CONDA_ENV
    shell:
        "hcm pretrain --config {input.recipe} --out-dir {params.out_dir} --resume --no-progress "
        "{params.sets} --set runtime.threads={threads} > {log} 2>&1"


rule train:
    input:
        unpack(lambda w: train_inputs(w.dataset)),
    output:
        summary=f"{RES}/runs/{{dataset}}/{{variant}}/seed{{seed}}/train_summary.json",
        model=f"{RES}/runs/{{dataset}}/{{variant}}/seed{{seed}}/model.pt",
        epochs=f"{RES}/runs/{{dataset}}/{{variant}}/seed{{seed}}/epochs.csv",
        metrics=f"{RES}/runs/{{dataset}}/{{variant}}/seed{{seed}}/metrics.json",
        plot=f"{RES}/runs/{{dataset}}/{{variant}}/seed{{seed}}/cmc.png",
    log:
        f"{RES}/logs/train/{{dataset}}/{{variant}}/seed{{seed}}.log",
    benchmark:
        f"{RES}/benchmarks/train/{{dataset}}/{{variant}}/seed{{seed}}.tsv"
    params:
        out_dir=lambda w, output: os.path.dirname(output.summary),
        sets=lambda w: train_sets(w.dataset, w.variant, w.seed),
    threads: rule_resources("train")["threads"]
    resources:
        mem_mb=rule_resources("train")["mem_mb"],
        runtime=rule_resources("train")["runtime"],
        gpu=rule_resources("train")["gpu"],
    conda:
        CONDA_ENV
    shell:
        "hcm train --config {input.recipe} --out-dir {params.out_dir} --resume --no-progress --evaluate "
        "{params.sets} --set runtime.threads={threads} > {log} 2>&1 || [ $? -eq 3 ]"
