"""The requests the bench sends: held-out rows of the bundled data sets, else random ones."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from predictors.metadata import ModelMetadata

# Distinct inputs cycled through per model: enough that no cache sees one tensor.
INPUT_POOL = 256


def load_inputs(meta: ModelMetadata, count: int = INPUT_POOL) -> list[dict[str, np.ndarray]]:
    """Batch-1 requests: held-out rows for the bundled data sets, else random of the right shape."""
    import numpy as np

    rows = _heldout_rows(meta)
    if rows is not None:
        spec = meta.inputs[0]
        pool = rows[:count].astype(spec.dtype, copy=False)
        return [{spec.name: np.ascontiguousarray(pool[i : i + 1])} for i in range(len(pool))]
    rng = np.random.default_rng(meta.seed or 0)
    requests = []
    for _ in range(count):
        request = {}
        for spec in meta.inputs:
            shape = [1 if d == -1 else d for d in spec.shape]
            if spec.dtype.kind == "f":
                data = rng.random(shape).astype(spec.dtype)
            elif spec.dtype.kind == "b":
                data = rng.integers(0, 2, shape).astype(spec.dtype)
            else:
                data = rng.integers(0, 10, shape).astype(spec.dtype)
            request[spec.name] = data
        requests.append(request)
    return requests


def _heldout_rows(meta: ModelMetadata) -> np.ndarray | None:
    """The bundled models' held-out split (as in training), when this model is one of them."""
    dataset = str(meta.provenance.get("dataset", ""))
    if len(meta.inputs) != 1 or meta.seed is None:
        return None
    try:
        from predictors.training import datasets
    except ImportError:
        return None
    loader = {
        "sklearn.datasets.load_digits": datasets.digits,
        "sklearn.datasets.load_wine": datasets.wine,
    }.get(dataset)
    if loader is None:
        return None
    try:
        x_test = loader(meta.seed).x_test
    except ImportError:  # scikit-learn is the `train` extra
        return None
    spec = meta.inputs[0]
    if list(x_test.shape[1:]) != [d for d in spec.shape[1:]]:
        return None
    return x_test
