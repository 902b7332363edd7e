"""Synthetic re-ID benchmark: procedurally rendered people and vehicles in the real layouts.

``generate(name, parent)`` writes one of the presets (``PRESETS``: synth-market,
synth-duke, synth-msmt17, synth-veri, synth-pretrain) in the folder layout and file
names of the real dataset it stands in for, so the real readers load it;
``contact_sheet`` draws identities x cameras. ``import hcm.data.synthetic.register``
registers the presets with ``hcm.data.load_dataset``. See docs/synthetic-generator.md.
"""

from hcm.data.synthetic.contact_sheet import contact_sheet
from hcm.data.synthetic.generate import GENERATOR_VERSION, generate
from hcm.data.synthetic.spec import PRESETS, SynthSpec, spec_for

__all__ = ["GENERATOR_VERSION", "PRESETS", "SynthSpec", "contact_sheet", "generate", "spec_for"]
