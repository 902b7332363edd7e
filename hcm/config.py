"""Typed training configuration: YAML files with ``_base_`` inheritance, ``--set`` overrides,
variant overlays and a JSON schema.

Resolution order (later wins): the ``_base_`` chain of the recipe file, the recipe
file itself, the overlay of the chosen ``variant`` (:data:`hcm.variants.VARIANTS`), the
``--set`` overrides. The modules under ``plugins`` are imported first (they may register
the variant, loss terms or memory rules the config names). The result is validated by :class:`TrainConfig` (unknown keys are errors)
and is written in full to every run directory.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from hcm.errors import ConfigError


class _Section(BaseModel):
    # no NaN / infinity: config.yaml (JSON mode) would record them as null, so a run's recorded
    # config would not reproduce it (found by tests/test_config_properties.py)
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def _plain_values(value: Any, where: str, _inside: tuple[int, ...] = ()) -> None:
    """Refuse what ``config.yaml`` cannot record as given: NaN / infinity, YAML's other types
    (a date such as ``2024-01-01``, bytes) that JSON mode turns into strings, and a value that
    contains itself (YAML anchors: ``&a [*a]``)."""
    if id(value) in _inside:
        raise ValueError(f"{where}: the value contains itself (a YAML anchor referring to itself)")
    if isinstance(value, (dict, list, tuple)):
        _inside = (*_inside, id(value))
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}: {value} is not a finite number")
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{where}: key {k!r} is not a string")
            _plain_values(v, f"{where}.{k}", _inside)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _plain_values(v, where, _inside)
    elif value is not None and not isinstance(value, (bool, int, float, str)):
        raise ValueError(f"{where}: {value!r} ({type(value).__name__}) is not a number, string, list or mapping; "
                         "quote it if a string is meant")


class DatasetConfig(_Section):
    name: str = Field(description="registered dataset name, e.g. market1501 or synth-market")
    root: str = Field("data", description="dataset folder or its parent")
    index: str | None = Field(None, description="index file written by `hcm prepare` (read instead of scanning)")
    options: dict[str, Any] = Field(
        default_factory=dict, description="options of the dataset's reader, checked by its spec "
                                          "(e.g. MSMT17's train_lists; `hcm prepare --list` shows them)")
    val_fraction: float = Field(
        0.0, ge=0.0, lt=1.0,
        description="fraction of training identities held out as a validation split (0 = none)",
    )
    synth_overrides: dict[str, Any] = Field(
        default_factory=dict, description="generator parameters overriding a synthetic preset"
    )

    @field_validator("synth_overrides", "options")
    @classmethod
    def _plain_overrides(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        _plain_values(value, str(info.field_name))
        return value

    @model_validator(mode="before")
    @classmethod
    def _flat_options(cls, data: Any) -> Any:
        """``msmt_train_lists`` of earlier recipes is ``options.train_lists``."""
        if isinstance(data, dict) and "msmt_train_lists" in data:
            data = dict(data)
            given, options = data.pop("msmt_train_lists"), data.get("options") or {}
            # options that are not a mapping are left for validation to refuse with their key
            data["options"] = {"train_lists": given, **options} if isinstance(options, dict) else options
        return data


class ModelConfig(_Section):
    arch: str = Field(
        "resnet50", description="registered backbone (hcm.models.reid.BACKBONES): resnet18/34/50 (the paper's), "
                    "shufflenet_v2_x0_5/x1_0 (light, but its features collapsed on the synthetic suite, "
                    "docs/synthetic-benchmark.md), or one of your own (docs/extending.md)")
    weights: str = Field("imagenet", description="'imagenet', 'none', or a path to a checkpoint")
    width: int = Field(
        64, ge=4, le=256,
        description="ResNets only: channels of the first stage (stages: width, 2x, 4x, 8x; 64 = torchvision's "
                    "network). Other values build a narrower (or wider) ResNet of the same depth from torchvision's "
                    "blocks (width 32: about 4x fewer FLOPs); no ImageNet weights exist for them")
    last_stride: Literal[1, 2] = 1
    pooling: Literal["gem", "avg"] = "gem"
    gem_p: float = Field(3.0, gt=0)
    channels_last: bool = Field(
        True, description="channels-last activations: faster convolutions (oneDNN, cuDNN), same maths")

    @model_validator(mode="after")
    def _check_width(self) -> ModelConfig:
        if self.width != 64 and not self.arch.startswith("resnet"):
            raise ValueError(f"model.width applies to ResNets only; {self.arch} needs width 64 (got {self.width})")
        if self.width != 64 and self.weights.lower() == "imagenet":
            raise ValueError(
                f"model.width={self.width}: ImageNet weights exist only for width 64; set model.weights "
                "to 'none' or to a checkpoint of the same width (e.g. from `hcm pretrain`)")
        return self


class InputConfig(_Section):
    height: int = Field(256, gt=0)
    width: int = Field(128, gt=0)
    flip_p: float = Field(0.5, ge=0, le=1)
    pad: int = Field(10, ge=0)
    erasing_p: float = Field(0.5, ge=0, le=1)
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)


class SamplerConfig(_Section):
    batch_size: int = Field(256, gt=0, description="P x K images per optimiser step")
    num_instances: int = Field(16, gt=0, description="K images per pseudo identity")
    accum_steps: int = Field(
        1, gt=0, description="split each batch into this many micro-batches (gradient accumulation)"
    )

    @model_validator(mode="after")
    def _check_batch(self) -> SamplerConfig:
        # checked here, not first by the sampler after epoch 1's extraction and clustering
        if self.batch_size % self.num_instances:
            raise ValueError(
                f"batch_size={self.batch_size} is not a multiple of num_instances={self.num_instances}; set "
                f"batch_size = P x num_instances, e.g. {max(1, self.batch_size // self.num_instances) * self.num_instances}")
        return self


class ClusterConfig(_Section):
    algorithm: str = Field("dbscan", description="registered clusterer")
    eps: float = Field(0.6, gt=0, lt=1)
    min_samples: int = Field(4, gt=0)
    k1: int = Field(30, gt=0)
    k2: int = Field(6, gt=0)
    num_clusters: int | None = Field(
        None, gt=0, description="number of clusters, for algorithm=kmeans only"
    )
    pair_budget: int | None = Field(
        50_000, gt=0,
        description="dbscan: most pair terms (image pair x shared neighbour) of the Jaccard step per image, counted "
                    "before it runs; more stops clustering with an error (degenerate features, e.g. "
                    "model.weights=none: ~N^2 work), as does a k-NN tie search wider than 2,048 candidates per image "
                    "(near-identical features). Well-clustered features need ~1,000-10,000; None = no bound")


#: flat keys of earlier recipes (and of the sweep's knobs) -> (term, option) under ``loss.terms``
LOSS_ALIASES: dict[str, tuple[str, str]] = {
    "dynamic_factor": ("identity", "factor"), "gamma": ("identity", "gamma"), "tau": ("identity", "tau"),
    "tau_v": ("image", "tau_v"), "n_neg": ("image", "n_neg"), "lambda_img": ("image", "weight"),
}
#: flat on/off switches of earlier recipes: ``loss.<term>: false`` removes the term
LOSS_SWITCHES: tuple[str, ...] = ("identity", "image")
#: the loss terms that are on unless a config removes them (``loss.terms.<name>: null``)
DEFAULT_TERMS: tuple[str, ...] = ("identity", "image")
#: flat keys of earlier recipes -> (memory, option) under ``memory``
MEMORY_ALIASES: dict[str, tuple[str, str]] = {
    "momentum_identity": ("identity", "momentum"), "momentum_image": ("image", "momentum"),
}


def _apply_aliases(data: dict[str, Any], sections: dict[str, Any], aliases: dict[str, tuple[str, str]]) -> None:
    """Move flat alias keys of ``data`` into ``sections[section][option]`` (sections switched off ignore them)."""
    for key, (section, option) in aliases.items():
        if key in data:
            value = data.pop(key)
            if isinstance(sections.get(section), dict):
                sections[section] = {**sections[section], option: value}


class LossConfig(_Section):
    """The loss: registered terms (``hcm.terms``) with their options, summed with their weights.

    A recipe's ``terms`` are merged over the default ``{identity: {}, image: {}}`` when the
    config is resolved (:func:`resolve_train_config`); a term set to ``null`` is removed
    (``--set loss.terms.image=null``). Validated directly, ``terms`` are exactly the terms
    (so a run's config.yaml reads back as written), and no ``terms`` means the defaults. The
    flat keys of :data:`LOSS_ALIASES` and :data:`LOSS_SWITCHES` are accepted and moved into
    ``terms``.
    """

    terms: dict[str, Any] = Field(
        default_factory=lambda: {name: {} for name in DEFAULT_TERMS},
        description="loss term name -> its options (weight and the term's own; see docs/extending.md); "
                    "null removes a term")

    @model_validator(mode="before")
    @classmethod
    def _flat_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        given = data.pop("terms", None)
        if given is not None and not isinstance(given, dict):
            raise ValueError(f"loss.terms must be a mapping of term name -> options, got {given!r}")
        # terms given = exactly those (a resolved config.yaml reads back as it was written); none = the defaults
        terms: dict[str, Any] = dict(given) if given is not None else {name: {} for name in DEFAULT_TERMS}
        for switch in LOSS_SWITCHES:
            if switch in data:
                on = data.pop(switch)
                if not isinstance(on, bool):
                    raise ValueError(f"loss.{switch} must be true or false, got {on!r}")
                terms[switch] = (terms.get(switch) or {}) if on else None
        _apply_aliases(data, terms, LOSS_ALIASES)
        data["terms"] = {name: opts for name, opts in terms.items() if opts is not None}
        return data

    @field_validator("terms")
    @classmethod
    def _term_options(cls, terms: dict[str, Any]) -> dict[str, Any]:
        from hcm.terms import LOSS_TERMS

        if not terms:
            raise ValueError("every loss term is off; keep at least one under loss.terms")
        out = {}
        for name, opts in terms.items():
            if name not in LOSS_TERMS:
                raise ValueError(f"unknown loss term {name!r}; registered: {', '.join(LOSS_TERMS.names())} "
                                 "(a term of your own: list its module under plugins)")
            options = LOSS_TERMS.get(name).options
            try:
                out[name] = opts if isinstance(opts, options) else options.model_validate(opts or {})
            except ValidationError as exc:
                problems = "; ".join(f"loss.terms.{name}.{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                     for e in exc.errors())
                raise ValueError(problems) from None
        return out


class MemorySection(_Section):
    rule: str = Field("momentum", description="registered update rule: momentum, hard, hybrid (hcm.memory)")
    momentum: float | None = Field(
        None, ge=0, lt=1, description="weight of the OLD value; default: the loss term's (identity 0.1, image 0.2)")


def memory_sections(data: Any) -> Any:
    """``memory`` config: a section per memory the registered loss terms ask for (momentum: the term's
    default), the given sections merged over them, flat :data:`MEMORY_ALIASES` moved in."""
    from hcm.terms import LOSS_TERMS

    if data is None:
        data = {}
    if not isinstance(data, dict):
        return data
    sections: dict[str, Any] = {}
    for term in LOSS_TERMS.values():
        for request in term.memories:
            sections.setdefault(request.name, {"momentum": request.momentum})
    for name, value in data.items():
        if isinstance(value, BaseModel):
            value = value.model_dump()
        if name in MEMORY_ALIASES:
            continue
        # a section that is not a mapping is left for validation to refuse with its key
        sections[name] = {**sections.get(name, {}), **value} if isinstance(value, dict) else value
    _apply_aliases(dict(data), sections, MEMORY_ALIASES)
    return sections


class OptimConfig(_Section):
    lr: float = Field(3.5e-4, gt=0)
    weight_decay: float = Field(5e-4, ge=0)
    step_size: int = Field(20, gt=0)
    lr_gamma: float = Field(0.1, gt=0)
    epochs: int = Field(50, ge=0)
    iters: int = Field(200, gt=0)


class EvalConfig(_Section):
    every: int = Field(10, ge=0, description="test-set evaluation every N epochs, for curves only (0 = end only)")
    batch_size: int = Field(256, gt=0)
    flip: bool = Field(False, description="average features of the image and its mirror")
    rerank: bool = Field(False, description="k-reciprocal re-ranking of the test distances")
    metric: Literal["cosine", "euclidean"] = "cosine"
    select: Literal["final", "val"] = Field(
        "final", description="reported checkpoint: the final one, or the best on the validation split"
    )


class RuntimeConfig(_Section):
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    amp: Literal["auto", "on", "off"] = "auto"
    workers: int = Field(0, ge=0, description="data-loader worker processes (image_store=false only: the store needs none)")
    cache_images: bool = Field(
        False, description="keep decoded images in memory across epochs (small datasets, workers=0); "
                           "used only with image_store=false")
    image_store: bool = Field(
        True, description="decode every image once into a uint8 array memory-mapped from disk, at the input "
                          "size (hcm.data.store; built on first use or by `hcm prepare --image-store`), read by "
                          "training, extraction and evaluation, with augmentation batched on the training "
                          "device (hcm.data.batch_augment); false = decode and transform each image in "
                          "loader workers every epoch")
    store_dir: str | None = Field(
        None, description="folder of the image store (None = <dataset folder>/../<dataset name>.store)")
    threads: int | None = Field(None, gt=0, description="torch intra-op threads (None = torch default)")
    checkpoint_every: int = Field(1, gt=0)
    deterministic: bool = Field(True, description="ask torch for deterministic algorithms")
    diagnostics: bool = Field(
        True, description="log gradient-scale diagnostics per epoch (each loss term's gradient norm w.r.t. the "
                          "embeddings and its share; method.md): one extra backward through the loss, not the "
                          "network, per term and step; the training numerics are unchanged")
    tf32: bool = Field(
        False, description="let float32 convolutions and matmuls on CUDA run in TF32 (faster on Ampere and "
                           "later, about 3 fewer significant digits); off = IEEE float32, torch's default "
                           "for matmuls but not for cuDNN convolutions. No effect on the CPU or under AMP's "
                           "float16 kernels")

    @field_validator("amp", mode="before")
    @classmethod
    def _amp_switch(cls, value: Any) -> Any:
        """YAML reads a bare ``on``/``off`` (in a file or ``--set runtime.amp=off``) as a boolean."""
        if isinstance(value, bool):
            return "on" if value else "off"
        return value


class TrainConfig(_Section):
    """The full, resolved configuration of one training run."""

    seed: int = 0
    plugins: list[str] = Field(
        default_factory=list, description="modules imported before the config is resolved: your own loss terms, "
                                          "variants, memory rules, datasets (docs/extending.md)")
    variant: str = Field("hcm", description="a registered variant (hcm.variants)")
    labels: Literal["pseudo", "true"] = Field("pseudo", description="pseudo labels, or true labels (upper bound)")
    adapt: bool = Field(True, description="False: evaluate the initial backbone only (lower bound)")
    dataset: DatasetConfig
    model: ModelConfig = ModelConfig()
    input: InputConfig = InputConfig()
    sampler: SamplerConfig = SamplerConfig()
    cluster: ClusterConfig = ClusterConfig()
    loss: LossConfig = LossConfig()
    memory: dict[str, MemorySection] = Field(
        default_factory=lambda: {name: MemorySection(**v) for name, v in memory_sections({}).items()},
        description="memory name (as the loss terms ask for it) -> update rule and momentum; "
                    "flat momentum_identity / momentum_image are accepted")
    optim: OptimConfig = OptimConfig()
    eval: EvalConfig = EvalConfig()
    runtime: RuntimeConfig = RuntimeConfig()

    @field_validator("variant")
    @classmethod
    def _known_variant(cls, name: str) -> str:
        from hcm.variants import VARIANTS

        if name not in VARIANTS:
            raise ValueError(f"unknown variant {name!r}; registered: {', '.join(VARIANTS.names())} "
                             "(a variant of your own: list its module under plugins)")
        return name

    @field_validator("memory", mode="before")
    @classmethod
    def _memory_sections(cls, data: Any) -> Any:
        return memory_sections(data)

    @field_validator("memory")
    @classmethod
    def _known_rules(cls, sections: dict[str, MemorySection]) -> dict[str, MemorySection]:
        from hcm.memory import MEMORY_RULES

        for name, section in sections.items():
            if section.rule not in MEMORY_RULES:
                raise ValueError(f"memory.{name}.rule: unknown rule {section.rule!r}; registered: "
                                 f"{', '.join(MEMORY_RULES.names())} (a rule of your own: list its module "
                                 "under plugins)")
        return sections

    @model_validator(mode="after")
    def _memories_of_terms(self) -> TrainConfig:
        """Every memory the loss terms ask for gets a section; a missing momentum takes the term's default."""
        from hcm.terms import memory_requests

        for name, request in memory_requests(list(self.loss.terms)).items():
            section = self.memory.setdefault(name, MemorySection())
            if section.momentum is None:
                section.momentum = request.momentum
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class PretrainConfig(_Section):
    """Supervised pretraining on a labelled source set (cross-entropy + triplet)."""

    seed: int = 0
    dataset: DatasetConfig
    model: ModelConfig = ModelConfig()
    input: InputConfig = InputConfig()
    sampler: SamplerConfig = SamplerConfig(batch_size=64, num_instances=4)
    optim: OptimConfig = OptimConfig(epochs=10, iters=100)
    label_smoothing: float = Field(0.1, ge=0, lt=1)
    triplet_margin: float = Field(0.3, gt=0)
    eval: EvalConfig = EvalConfig(every=0)
    runtime: RuntimeConfig = RuntimeConfig()

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


# ---------------------------------------------------------------- loading


def deep_merge(base: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; ``other`` wins; neither input is modified."""
    out = copy.deepcopy(base)
    for key, value in other.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def merge_layer(base: dict[str, Any], layer: dict[str, Any]) -> dict[str, Any]:
    """``deep_merge(base, layer)``, with ``layer``'s flat loss and memory keys moved to their place first.

    ``loss.identity|image: false`` removes the term (``true`` turns it on); a flat option
    (:data:`LOSS_ALIASES`, e.g. ``loss.gamma``) sets the option of its term if the term is
    still on after the merge, and is dropped otherwise (the sweep's ``loss.gamma`` does not
    turn L_id back on in ``image_only``); ``memory.momentum_identity|image`` set
    ``memory.<name>.momentum``. So a later layer wins whichever spelling either layer uses.
    """
    layer = copy.deepcopy(layer)
    soft: list[tuple[str, str, Any]] = []
    loss = layer.get("loss")
    if isinstance(loss, dict):
        given = loss.get("terms") or {}
        if not isinstance(given, dict):
            raise ConfigError(f"loss.terms must be a mapping of term name -> options, got {given!r}")
        terms = dict(given)
        for switch in LOSS_SWITCHES:
            if switch in loss:
                on = loss.pop(switch)
                if not isinstance(on, bool):
                    raise ConfigError(f"loss.{switch} must be true or false, got {on!r}")
                terms[switch] = {} if on else None
        soft = [(*LOSS_ALIASES[key], loss.pop(key)) for key in list(loss) if key in LOSS_ALIASES]
        if terms:
            loss["terms"] = terms
    memory = layer.get("memory")
    if isinstance(memory, dict):
        for key in [k for k in memory if k in MEMORY_ALIASES]:
            name, option = MEMORY_ALIASES[key]
            section = memory.get(name) or {}
            if not isinstance(section, dict):
                raise ConfigError(f"memory.{name} must be a mapping (rule, momentum), got {section!r}")
            memory[name] = {**section, option: memory.pop(key)}
    merged = deep_merge(base, layer)
    if soft:
        terms = merged.setdefault("loss", {}).setdefault("terms", {})
        for term, option, value in soft:
            current = terms.get(term, {} if term in DEFAULT_TERMS else None)
            if isinstance(current, dict):
                terms[term] = {**current, option: value}
    return merged


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (PyYAML keeps the last)."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice in one mapping (lines {seen[key]} and {line}); "
                "YAML would silently keep the second: delete one", key_node.start_mark)
        seen[key] = line
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def read_yaml(text: str) -> Any:
    """Parse YAML like ``yaml.safe_load``, but a duplicated mapping key is a ``yaml.YAMLError``."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass: no arbitrary objects


def load_yaml_chain(path: str | Path, _seen: tuple[Path, ...] = (), _named_by: Path | None = None) -> dict[str, Any]:
    """Read a YAML recipe, following its ``_base_`` (a path or list of paths, relative to it)."""
    path = Path(path).resolve()
    if path in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, path))
        raise ConfigError(f"{path}: circular _base_ chain: {chain}")
    if not path.is_file():
        if _named_by is not None:
            raise ConfigError(f"{_named_by}: its _base_ file {path} does not exist; fix the _base_ entry "
                              f"(paths are relative to {_named_by.parent})")
        raise ConfigError(f"{path}: config file not found; pass an existing YAML file to --config")
    try:
        data = read_yaml(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc}); fix the syntax at the position shown") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections, got {type(data).__name__}")
    bases = data.pop("_base_", [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f"{path}: _base_ must be a file path or a list of file paths, got {bases!r}")
    merged: dict[str, Any] = {}
    for base in bases:
        merged = merge_layer(merged, load_yaml_chain(path.parent / base, (*_seen, path), path))
    return merge_layer(merged, data)


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["optim.lr=1e-3", "loss.image=false"]`` -> nested dict; values are parsed as YAML."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not KEY=VALUE (e.g. --set optim.lr=0.001)")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r} conflicts with another override of {part!r}")
        node[parts[-1]] = value
    return out


def _validate(model: type[BaseModel], data: dict[str, Any], source: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            lines.append(f"  {loc}: {err['msg']}")
        raise ConfigError(
            f"{source}: invalid configuration:\n" + "\n".join(lines)
            + "\nfix these keys in the file or with --set KEY=VALUE (schema: `hcm schema`)"
        ) from None


def resolve_train_config(data: dict[str, Any], overrides: dict[str, Any] | None = None,
                         source: str = "<config>") -> TrainConfig:
    """Load the plugins, apply the variant overlay and the overrides to ``data`` and validate."""
    from hcm.plugins import load_plugins
    from hcm.variants import VARIANTS

    overrides = overrides or {}
    plugins = overrides.get("plugins", data.get("plugins")) or []
    if not isinstance(plugins, list):
        raise ConfigError(f"{source}: plugins must be a list of module names, got {plugins!r}")
    load_plugins(plugins, source=source)
    variant = overrides.get("variant", data.get("variant", "hcm"))
    if not isinstance(variant, str) or variant not in VARIANTS:  # a list or mapping is unhashable
        raise ConfigError(f"{source}: unknown variant {variant!r}; choose one of {', '.join(VARIANTS.names())} "
                          "(or list the module that registers it under plugins)")
    merged: dict[str, Any] = {"loss": {"terms": {name: {} for name in DEFAULT_TERMS}}}
    for layer in (data, VARIANTS.get(variant).overlay, overrides):
        merged = merge_layer(merged, layer)
    merged["variant"] = variant
    return _validate(TrainConfig, merged, source)


def load_train_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    return resolve_train_config(load_yaml_chain(path), parse_overrides(overrides), source=str(path))


def load_pretrain_config(path: str | Path, overrides: list[str] | None = None) -> PretrainConfig:
    data = deep_merge(load_yaml_chain(path), parse_overrides(overrides))
    return _validate(PretrainConfig, data, str(path))


def json_schema(kind: Literal["train", "pretrain"] = "train") -> str:
    """The JSON schema; ``variant``'s enum lists the registered variants."""
    model = TrainConfig if kind == "train" else PretrainConfig
    schema = model.model_json_schema()
    if kind == "train":
        from hcm.variants import VARIANTS

        schema["properties"]["variant"]["enum"] = VARIANTS.names()
    return json.dumps(schema, indent=2, sort_keys=True)


def canonical_key(key: str) -> str:
    """The resolved config's key for a dotted key that may be a flat alias (``loss.gamma`` ->
    ``loss.terms.identity.gamma``, ``memory.momentum_image`` -> ``memory.image.momentum``)."""
    section, _, rest = key.partition(".")
    if section == "loss" and rest in LOSS_ALIASES:
        term, option = LOSS_ALIASES[rest]
        return f"loss.terms.{term}.{option}"
    if section == "memory" and rest in MEMORY_ALIASES:
        name, option = MEMORY_ALIASES[rest]
        return f"memory.{name}.{option}"
    return key


def dump_yaml(cfg: BaseModel) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
