"""Colour tables and body proportions the identities are drawn from.

Each palette entry is ``(name, (r, g, b), base_weight)``; the base weight is the
colour's rough real-world frequency (black, white, grey and denim clothes and
white/black/silver cars are common). A spec's ``colour_skew`` raises the weights to
that power, so 0 gives uniform colours and 1 the real-world skew, which produces
many look-alike identities, as real re-ID data does. Palettes are ordered so that
the first ``palette_size`` entries stay well spread.
"""

from __future__ import annotations

import numpy as np

RGB = tuple[int, int, int]

CLOTHING: tuple[tuple[str, RGB, float], ...] = (
    ("black", (24, 24, 27), 4.0),
    ("white", (232, 232, 226), 2.5),
    ("red", (188, 32, 36), 1.0),
    ("navy", (30, 38, 86), 2.0),
    ("grey", (126, 126, 128), 2.0),
    ("yellow", (228, 196, 42), 0.6),
    ("green", (42, 128, 62), 0.7),
    ("sky blue", (112, 168, 222), 1.0),
    ("brown", (108, 70, 42), 1.0),
    ("pink", (232, 140, 170), 0.8),
    ("orange", (232, 118, 32), 0.5),
    ("purple", (106, 50, 138), 0.5),
    ("beige", (212, 192, 158), 1.2),
    ("teal", (22, 128, 128), 0.5),
    ("denim", (68, 98, 142), 2.5),
    ("maroon", (108, 26, 40), 0.7),
    ("olive", (108, 108, 46), 0.6),
    ("light grey", (188, 188, 188), 1.2),
    ("dark green", (26, 68, 40), 0.6),
    ("royal blue", (40, 78, 196), 0.7),
    ("khaki", (168, 148, 100), 1.0),
    ("lavender", (168, 150, 208), 0.4),
    ("coral", (238, 110, 90), 0.4),
    ("cyan", (70, 196, 206), 0.3),
    ("charcoal", (58, 58, 64), 2.0),
    ("mustard", (198, 148, 30), 0.4),
    ("lime", (148, 198, 60), 0.3),
    ("magenta", (198, 40, 138), 0.3),
    ("tan", (188, 148, 108), 0.6),
    ("mint", (158, 218, 188), 0.3),
    ("rust", (158, 70, 40), 0.4),
    ("cream", (242, 232, 198), 0.6),
)

VEHICLE: tuple[tuple[str, RGB, float], ...] = (
    ("white", (236, 236, 232), 4.0),
    ("black", (22, 22, 26), 3.5),
    ("silver", (178, 182, 186), 3.0),
    ("red", (176, 26, 30), 1.5),
    ("dark grey", (82, 84, 88), 2.5),
    ("blue", (36, 72, 170), 1.5),
    ("yellow", (232, 190, 30), 0.5),
    ("green", (36, 110, 60), 0.6),
    ("brown", (104, 66, 40), 0.6),
    ("dark blue", (24, 34, 78), 1.0),
    ("beige", (208, 190, 150), 0.6),
    ("orange", (226, 110, 28), 0.4),
    ("light blue", (120, 170, 214), 0.5),
    ("dark red", (104, 20, 28), 0.8),
    ("gold", (190, 160, 90), 0.4),
    ("dark green", (24, 62, 40), 0.5),
)

SKIN: tuple[RGB, ...] = ((248, 214, 186), (230, 184, 146), (198, 146, 108), (148, 100, 70), (92, 62, 44))
HAIR: tuple[RGB, ...] = ((20, 18, 18), (56, 36, 24), (100, 64, 38), (198, 168, 110), (150, 148, 146), (128, 48, 28))
SHOES: tuple[RGB, ...] = ((22, 22, 24), (230, 230, 228), (96, 62, 36), (120, 120, 124), (34, 40, 80), (170, 30, 34))
HAIR_WEIGHTS: tuple[float, ...] = (3.0, 2.0, 1.5, 0.8, 0.6, 0.4)
SHOE_WEIGHTS: tuple[float, ...] = (3.0, 2.0, 1.0, 1.0, 0.6, 0.3)
#: shoulder half-width multipliers (body build) and leg length (fraction of body
#: height); ordered so that the first ``builds`` / ``leg_lengths`` entries are spread
BUILD_WIDTH: tuple[float, ...] = (1.0, 1.26, 0.86, 1.13)
LEG_LENGTH: tuple[float, ...] = (0.485, 0.455, 0.515)

#: window glass by tint level (light, medium, dark)
GLASS: tuple[RGB, ...] = ((118, 136, 148), (66, 76, 88), (26, 28, 34))


def weights(palette: tuple[tuple[str, RGB, float], ...], size: int, skew: float) -> np.ndarray:
    """Sampling probabilities of the first ``size`` colours: ``base_weight ** skew``, normalised."""
    w = np.array([entry[2] for entry in palette[:size]], dtype=np.float64) ** skew
    return w / w.sum()


def rgb(palette: tuple[tuple[str, RGB, float], ...], index: int) -> RGB:
    return palette[index][1]
