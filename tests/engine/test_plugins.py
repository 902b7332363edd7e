"""Extending without editing the package: a loss term, a memory rule, a component and a variant (and a
backbone) registered from modules outside ``hcm/``, trained through ``hcm train``, found in results.csv, the
ablation table and the figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import yaml

from tests.engine.recipes import tiny_recipe

REPO = Path(__file__).resolve().parents[2]

TOY_PLUGIN = '''
"""A toy extension: an extra loss term pulling each anchor to its centroid, and a variant using it."""
import torch
from pydantic import Field

from hcm.memory import mean_update_, register_memory_rule
from hcm.terms import MemoryRequest, TermOptions, register_loss_term
from hcm.variants import Component, Variant, register_component, register_variant


@register_memory_rule("toy_mean")
def toy_mean(banks, slots, q, momentum):
    """Once per slot: the batch mean of its members."""
    mean_update_(banks[0], slots, q, momentum)


class PullOptions(TermOptions):
    margin: float = Field(0.9, ge=0, le=2)


@register_loss_term("pull", options=PullOptions, memories=(MemoryRequest("identity", "cluster", momentum=0.1),),
                    logs=("loss_pull", "pull_sim"), label="pull loss $L_{pull}$")
def pull(q, batch, memories, opts):
    sim = (q * memories["identity"].features[batch["targets"]]).sum(dim=1)
    loss = torch.relu(opts.margin - sim).mean()
    return loss, {"loss_pull": loss.detach(), "pull_sim": sim.detach().mean()}


register_component(Component("pull", "L_pull", "pull_loss", "centroid pull"))
register_variant(Variant("hcm_pull", overlay={"loss": {"terms": {"pull": {"weight": 0.5}}},
                                             "memory": {"identity": {"rule": "toy_mean"}}}, label="HCM + pull",
                         color="#117733", marker="*", group="ablation",
                         components=("identity", "dynamic", "image", "pull")))
'''

FIGURE_PROBE = '''
import json, sys
import pandas as pd
import toy_hcm_plugin  # noqa: F401
from hcm.report.figures import ablation_figure, training_figure
tables = sys.argv[1]
results = pd.read_csv(f"{tables}/results.csv")
curves = pd.read_csv(f"{tables}/curves.csv")
abl = ablation_figure(results)
train = training_figure(curves)
print(json.dumps({
    "ablation_legend": [t.get_text() for leg in abl.legends for t in leg.get_texts()],
    "training_panels": [ax.get_ylabel() for ax in train.axes if ax.get_visible()],
    "training_legend": [t.get_text() for leg in train.legends for t in leg.get_texts()],
}))
'''


def _recipe(tmp_path: Path, index: Path) -> Path:
    recipe = {**tiny_recipe(index), "eval": {"every": 0, "batch_size": 32}}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


def _hcm(args: list[str], plugin_dir: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_dir), str(REPO)]), **env}
    proc = subprocess.run([sys.executable, "-m", "hcm", *args], capture_output=True, text=True, env=environ,
                          cwd=plugin_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_toy_term_and_variant_from_outside_reach_results_table_and_figures(data_index: Path,
                                                                          tmp_path: Path) -> None:
    plugin_dir = tmp_path / "ext"
    plugin_dir.mkdir()
    (plugin_dir / "toy_hcm_plugin.py").write_text(textwrap.dedent(TOY_PLUGIN), encoding="utf-8")
    recipe = _recipe(tmp_path, data_index)
    runs = tmp_path / "runs"
    # the plugin comes from the recipe's `plugins` key; hcm knows nothing of it otherwise
    _hcm(["train", "--config", str(recipe), "--out-dir", str(runs / "toy"), "--set", "plugins=[toy_hcm_plugin]",
          "--set", "variant=hcm_pull", "--no-progress", "--evaluate"], plugin_dir)
    _hcm(["train", "--config", str(recipe), "--out-dir", str(runs / "hcm"), "--no-progress", "--evaluate"],
         plugin_dir)

    config = yaml.safe_load((runs / "toy" / "config.yaml").read_text())
    assert config["plugins"] == ["toy_hcm_plugin"] and config["variant"] == "hcm_pull"
    assert config["loss"]["terms"]["pull"] == {"weight": 0.5, "margin": 0.9}
    assert config["memory"]["identity"] == {"rule": "toy_mean", "momentum": 0.1}
    epochs = pd.read_csv(runs / "toy" / "epochs.csv")
    assert epochs["loss_pull"].notna().all() and epochs["pull_sim"].between(-1, 1).all()
    # the total is the weighted sum of the terms
    total = epochs["loss_id"] + epochs["loss_img"] + 0.5 * epochs["loss_pull"]
    assert ((epochs["loss"] - total).abs() < 1e-4).all()

    tables, figures = tmp_path / "tables", tmp_path / "figures"
    _hcm(["report", "aggregate", "--out-dir", str(tables), str(runs / "toy"), str(runs / "hcm")], plugin_dir)
    _hcm(["report", "build", "--tables", str(tables), "--figures", str(figures), "--readme",
          str(tmp_path / "README.md"), "--suite", "toy", "--no-progress"], plugin_dir,
         HCM_PLUGINS="toy_hcm_plugin")

    results = pd.read_csv(tables / "results.csv")
    assert set(results["variant"]) == {"hcm", "hcm_pull"}
    ablation_md = (tables / "ablation.md").read_text()
    header = ablation_md.splitlines()[0]
    assert "L_pull" in header and "L_id" in header
    toy_row = next(line for line in ablation_md.splitlines() if line.startswith("| HCM + pull"))
    hcm_row = next(line for line in ablation_md.splitlines() if line.startswith("| HCM (full)"))
    assert toy_row.split("|")[2:6] == [" ✓ "] * 4 and hcm_row.split("|")[5] == " – "
    ablation_csv = pd.read_csv(tables / "ablation.csv")
    assert ablation_csv.set_index("variant").loc["hcm_pull", "pull_loss"].all()
    assert (figures / "ablation.png").is_file() and (figures / "training_synth-market.png").is_file()

    probe = tmp_path / "probe.py"
    probe.write_text(FIGURE_PROBE, encoding="utf-8")
    out = subprocess.run([sys.executable, str(probe), str(tables)], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_dir), str(REPO)])})
    shown = json.loads(out.stdout)
    assert "HCM + pull" in shown["ablation_legend"] and "HCM (full)" in shown["ablation_legend"]
    assert "pull loss $L_{pull}$" in shown["training_panels"]
    assert "HCM + pull" in shown["training_legend"]


def test_unknown_plugin_and_variant_say_what_to_do(tmp_path: Path) -> None:
    from hcm.config import resolve_train_config
    from hcm.errors import ConfigError

    data = {"dataset": {"name": "synth-market"}}
    for overrides, match in (({"plugins": ["no_such_module_xyz"]}, "could not be imported"),
                             ({"variant": "no_such_variant"}, "list the module that registers it under plugins")):
        try:
            resolve_train_config(data, overrides)
        except ConfigError as exc:
            assert match in str(exc)
        else:
            raise AssertionError(f"{overrides} was accepted")


TINY_BACKBONE = '''
"""A toy backbone: conv stem + one residual stage (torchvision's BasicBlock), 16 channels at width 64."""
from torch import nn
from torchvision.models.resnet import BasicBlock

from hcm.models.reid import TrunkSpec, register_backbone


def build(width):
    c = max(4, width // 8)
    net = nn.Module()
    net.conv1 = nn.Conv2d(3, c, 3, stride=2, padding=1, bias=False)
    net.bn1 = nn.BatchNorm2d(c)
    net.relu = nn.ReLU(inplace=True)
    down = nn.Sequential(nn.Conv2d(c, 2 * c, 1, stride=2, bias=False), nn.BatchNorm2d(2 * c))
    net.stage1 = nn.Sequential(BasicBlock(c, 2 * c, stride=2, downsample=down))
    return net


register_backbone("tiny_cnn", TrunkSpec(("conv1", "bn1", "relu", "stage1"), "stage1", feat_dim=16, build=build))
'''


def test_toy_backbone_from_outside_trains(data_index: Path, tmp_path: Path) -> None:
    plugin_dir = tmp_path / "ext"
    plugin_dir.mkdir()
    (plugin_dir / "tiny_backbone.py").write_text(textwrap.dedent(TINY_BACKBONE), encoding="utf-8")
    run = tmp_path / "run"
    _hcm(["train", "--config", str(_recipe(tmp_path, data_index)), "--out-dir", str(run), "--set",
          "plugins=[tiny_backbone]", "--set", "model.arch=tiny_cnn", "--set", "model.width=64",
          "--set", "optim.epochs=1", "--no-progress", "--evaluate"], plugin_dir)
    import torch

    state = torch.load(run / "model.pt", map_location="cpu", weights_only=False)
    assert state["model_config"]["arch"] == "tiny_cnn"
    assert tuple(state["model"]["bn_neck.weight"].shape) == (16,)
    assert "stage1.0.conv1.weight" in state["model"]
    assert json.loads((run / "metrics.json").read_text())["mAP"] >= 0
