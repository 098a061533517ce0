"""Data sets that ship with scikit-learn, split the same way every time.

Tests use the same split to check served accuracy against metadata.json.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

TEST_FRACTION = 0.25


@dataclass(frozen=True)
class Split:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    labels: list[str]


def digits(seed: int) -> Split:
    """8x8 grey digits, scaled to [0, 1], shaped [N, 1, 8, 8] for a CNN."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)[:, None, :, :]
    y = data.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=TEST_FRACTION, random_state=seed, stratify=y
    )
    return Split(x_tr, y_tr, x_te, y_te, [str(d) for d in data.target_names])


def wine(seed: int) -> Split:
    """13 chemical measurements of wines from three cultivars, unscaled."""
    from sklearn.datasets import load_wine
    from sklearn.model_selection import train_test_split

    data = load_wine()
    x = data.data.astype(np.float32)
    y = data.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=TEST_FRACTION, random_state=seed, stratify=y
    )
    return Split(x_tr, y_tr, x_te, y_te, [str(n) for n in data.target_names])


#: the bundled model families, by name (`store build --only`, `train --family`)
FAMILIES: dict[str, Callable[[int], Split]] = {"digits": digits, "wine": wine}
