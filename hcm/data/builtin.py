"""Import the modules that register the built-in datasets (see ``hcm.data.registry``).

Each import registers its datasets as a side effect; the registry imports this
module on first use, so ``load_dataset`` always knows every built-in dataset.
"""

# Real datasets (read from a folder the user downloaded).
import hcm.data.market1501  # noqa: F401  market1501, dukemtmcreid
import hcm.data.msmt17  # noqa: F401  msmt17

# Generated datasets (created under --root when absent):
import hcm.data.synthetic.register  # noqa: F401  synth-market, synth-duke, synth-msmt17, synth-veri, synth-pretrain
import hcm.data.veri776  # noqa: F401  veri776
