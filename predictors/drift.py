"""Input drift: how far live inputs have moved from the data a model was trained on.

A model's metadata.json may carry a reference profile (`drift_profile`),
written by `store build`, `store import` and `store add --reference-data`.
The server counts every batch it runs into the same bins and exports, per
model, input and feature, the population stability index (PSI) of a sliding
window against the training shares. Why each piece is what it is:

**Features.** A tabular input (`[-1, F]`, F <= MAX_COLUMNS, or `[-1]`) is
profiled column by column: a column is what a data scientist reasons about,
and F series per model is a bounded label set. Anything else numeric (an
image `[-1, C, H, W]`, a sequence `[-1, C, L]`, a wide row) is summarised per
row: the mean and the standard deviation of each channel (axis 1, when it is
fixed and at most MAX_CHANNELS) or of the whole row. Brightness and contrast
are what moves when a camera, a scanner or a pre-processing step changes, and
two series per channel stay bounded whatever the image size. BYTES inputs are
not profiled; the profile lists them under `not_profiled`, with the reason.

**Bins.** Quantile bins of the training values: cut points at the 1/B, 2/B,
... quantiles (inverted CDF, so every cut point is a training value and no
bin is empty in training), the outer bins open to -inf and +inf. B is
`rows // ROWS_PER_BIN`, at most MAX_BINS: the PSI of a sample against its own
population grows like (B - 1) x (1/n_live + 1/n_reference), so a small
training set gets few bins. The bundled wine set (133 training rows) gets 4;
with 10 its own held-out rows scored up to 1.0, with 4 at most 0.13, and a
shift of two standard deviations scores at least 3.
A constant feature gets the bins "below", "exactly" and "above" its value.

**Counting** runs where the model runs, in a worker thread (the batcher's
leader, the executor, a gRPC thread), once per batch, never on the event
loop. A batch is counted as survival counts: for every cut point e of every
feature, how many rows had x >= e. That is one comparison of the batch
against all cut points at once, one sum over the rows and one addition into
the counters: no per-feature loop, no index arithmetic, no `bincount` array.
Bin counts are differences of survival counts, taken at scrape time. A
request of one row with at most PYTHON_COLUMNS features, the most common
batch, is instead binned in Python (`bisect` on each feature's cut points
into a flat list of counts; an image's summaries take two numpy calls, then
Python floats): each numpy call has a fixed dispatch cost, which at one row
is all there is. Timed inside a served model (gRPC, batch 1, a loaded 2-CPU
machine), wine's 13 columns took 25 us of CPU per request this way and 36 us
through the two numpy calls of the batch path; digits' 8x8 summaries 74 us
(in a tight loop: 5, 10 and 17 us). Past about 48 columns numpy wins again,
hence the limit. Every buffer is allocated when the model loads (the
counters, a boolean scratch of CHUNK_ROWS rows, the per-row summaries); a
larger batch is counted in chunks. The sums over rows are taken in uint8,
which is why a chunk holds at most 255 rows. A lock makes counting and
reading safe from several run threads; it is held for microseconds.

**Window.** A ring of WINDOW_SLOTS counters of SLOT_SECONDS each (30 x 60 s):
counting adds to the slot of the current minute, clearing it first when it
last held an older minute; the window is the sum of the slots of the last 30
minutes. Memory is fixed, no timer runs, and an idle model's window simply
empties.

**PSI** = sum over bins of (live - reference) x ln(live / reference), both
shares clipped below at EPSILON so that an empty bin scores high but
finitely. 0.1 is commonly read as a moderate shift and 0.25 as a significant
one (the alert's threshold). It is computed when /metrics is scraped, from
the window's counts, never per request. A window with no rows has no PSI:
the series is absent, while the rows-in-window series says 0.

Why this module is long: the profile, its JSON form, live counting and the
PSI are one definition of the bins. Building and counting share the layout,
the comparison type and the summaries, so a training row and the same row
sent live land in the same bin; split apart, they could drift apart.
"""

from __future__ import annotations

import bisect
import itertools
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from predictors.errors import Refused

#: columns of a tabular input profiled one by one; wider rows are summarised
MAX_COLUMNS = 64
#: channels summarised one by one; more (or a variable count) are summarised as one
MAX_CHANNELS = 32
MAX_BINS = 10
#: training rows per bin, at least (see "Bins" above)
ROWS_PER_BIN = 30
MIN_ROWS = 2 * ROWS_PER_BIN
#: rows counted per pass; the sums over rows are uint8, so at most 255
CHUNK_ROWS = 255
#: one-row requests of at most this many features are binned in Python (see "Counting")
PYTHON_COLUMNS = 32
SLOT_SECONDS = 60.0
WINDOW_SLOTS = 30
EPSILON = 1e-4

COLUMNS = "columns"
CHANNELS = "channels"
KINDS = (COLUMNS, CHANNELS)


class ProfileError(Refused):
    """A reference profile cannot be built, or does not fit the model's inputs."""


class Spec(Protocol):
    """A model input as metadata.json describes it (predictors.metadata.TensorSpec)."""

    @property
    def name(self) -> str: ...
    @property
    def datatype(self) -> str: ...
    @property
    def shape(self) -> tuple[int, ...]: ...
    @property
    def dtype(self) -> np.dtype: ...


@dataclass(frozen=True)
class Layout:
    """What is profiled of one input: columns, or per-row summaries of some channels."""

    kind: str
    #: columns: how many; channels: how many are summarised (1: the whole row)
    width: int

    @property
    def features(self) -> int:
        return self.width if self.kind == COLUMNS else 2 * self.width

    def names(self) -> list[str]:
        if self.kind == COLUMNS:
            return [f"column_{i}" for i in range(self.width)]
        if self.width == 1:
            return ["row_mean", "row_std"]
        return [f"channel_{c}_{stat}" for stat in ("mean", "std") for c in range(self.width)]


def compare_dtype(spec: Spec, layout: Layout) -> np.dtype:
    """The type values and cut points are compared in, when building and when counting.

    Columns of a float input compare in its own type (at least float32): the
    cut points are values of that type, so they are exact in it. Integer
    columns and the float64 summaries compare in float64.
    """
    if layout.kind == COLUMNS and spec.dtype.kind == "f":
        return np.promote_types(spec.dtype, np.float32)
    return np.dtype(np.float64)


def layout_of(spec: Spec) -> Layout | str:
    """How an input is profiled, or why it is not."""
    if spec.dtype.kind not in "biuf":
        return f"{spec.datatype} inputs are not profiled"
    if not spec.shape or spec.shape[0] != -1:
        return "inputs without a batch axis first are not profiled"
    rest = spec.shape[1:]
    if len(rest) == 0:
        return Layout(COLUMNS, 1)
    if len(rest) == 1 and 1 <= rest[0] <= MAX_COLUMNS:
        return Layout(COLUMNS, rest[0])
    if len(rest) >= 2 and 1 <= rest[0] <= MAX_CHANNELS:
        return Layout(CHANNELS, rest[0])
    return Layout(CHANNELS, 1)


@dataclass(frozen=True)
class FeatureProfile:
    name: str
    #: cut points, strictly increasing; bin k holds edges[k-1] <= x < edges[k]
    edges: tuple[float, ...]
    #: the training share of each of the len(edges) + 1 bins
    shares: tuple[float, ...]


@dataclass(frozen=True)
class InputProfile:
    kind: str
    rows: int
    features: tuple[FeatureProfile, ...]


@dataclass(frozen=True)
class DriftProfile:
    """metadata.json's `drift_profile`: the reference of each profiled input."""

    inputs: dict[str, InputProfile]
    #: where the reference rows came from, in words
    source: str = ""
    #: inputs that are not profiled, and why
    not_profiled: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "bins": f"quantiles of the reference rows, at most {MAX_BINS} per feature",
            "inputs": {
                name: {
                    "kind": p.kind,
                    "rows": p.rows,
                    "features": [
                        {"name": f.name, "edges": list(f.edges), "shares": list(f.shares)}
                        for f in p.features
                    ],
                }
                for name, p in self.inputs.items()
            },
            "not_profiled": dict(self.not_profiled),
        }

    @classmethod
    def from_dict(cls, raw: Any) -> DriftProfile:
        if not isinstance(raw, dict) or not isinstance(raw.get("inputs"), dict):
            raise ProfileError("drift_profile must be an object with `inputs`")
        try:
            inputs = {
                str(name): _input_from_dict(str(name), p) for name, p in raw["inputs"].items()
            }
            not_profiled = {str(k): str(v) for k, v in dict(raw.get("not_profiled", {})).items()}
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ProfileError):
                raise
            raise ProfileError(f"drift_profile is malformed: {exc!r}") from exc
        return cls(inputs, str(raw.get("source", "")), not_profiled)

    def check(self, specs: Sequence[Spec]) -> None:
        """Refuse a profile that does not describe these inputs."""
        by_name = {s.name: s for s in specs}
        for name, profile in self.inputs.items():
            spec = by_name.get(name)
            if spec is None:
                raise ProfileError(f"drift_profile: the model has no input {name!r}")
            layout = layout_of(spec)
            if isinstance(layout, str):
                raise ProfileError(f"drift_profile: input {name!r}: {layout}")
            if (profile.kind, len(profile.features)) != (layout.kind, layout.features):
                raise ProfileError(
                    f"drift_profile: input {name!r} ({spec.datatype} {list(spec.shape)}) needs "
                    f"a profile of {layout.features} features ({layout.kind}), this one has "
                    f"{len(profile.features)} ({profile.kind})"
                )


def _input_from_dict(name: str, raw: dict[str, Any]) -> InputProfile:
    kind = str(raw["kind"])
    if kind not in KINDS:
        raise ProfileError(f"drift_profile: input {name!r}: kind must be one of {KINDS}")
    features = []
    for item in raw["features"]:
        edges = tuple(float(e) for e in item["edges"])
        shares = tuple(float(s) for s in item["shares"])
        feature = str(item["name"])
        where = f"drift_profile: input {name!r} feature {feature!r}"
        if not all(math.isfinite(e) for e in edges) or any(
            b <= a for a, b in itertools.pairwise(edges)
        ):
            raise ProfileError(f"{where}: edges must be finite and strictly increasing")
        if len(edges) > MAX_BINS + 1 or len(shares) != len(edges) + 1:
            raise ProfileError(
                f"{where}: {len(edges)} edges need {len(edges) + 1} shares, got {len(shares)} "
                f"(at most {MAX_BINS + 1} edges)"
            )
        if any(not 0 <= s <= 1 for s in shares) or abs(sum(shares) - 1) > 1e-3:
            raise ProfileError(f"{where}: shares must lie in [0, 1] and sum to 1")
        features.append(FeatureProfile(feature, edges, shares))
    rows = int(raw["rows"])
    if rows < 1 or not features:
        raise ProfileError(f"drift_profile: input {name!r}: needs rows >= 1 and features")
    return InputProfile(kind, rows, tuple(features))


# -- building a profile -----------------------------------------------------


def build_profile(
    reference: Mapping[str, np.ndarray],
    specs: Sequence[Spec],
    source: str,
    feature_names: Mapping[str, Sequence[str]] | None = None,
) -> DriftProfile:
    """The profile of the reference (training) rows of each input.

    Every profilable input needs its rows in `reference`; inputs that cannot
    be profiled (BYTES, no batch axis) are listed with the reason instead.
    """
    by_name = {s.name: s for s in specs}
    unknown = sorted(set(reference) - set(by_name))
    if unknown:
        raise ProfileError(
            f"reference data for {unknown}, which the model does not take "
            f"(its inputs: {sorted(by_name)})"
        )
    inputs: dict[str, InputProfile] = {}
    not_profiled: dict[str, str] = {}
    for spec in specs:
        layout = layout_of(spec)
        if isinstance(layout, str):
            not_profiled[spec.name] = layout
            continue
        if spec.name not in reference:
            raise ProfileError(
                f"no reference data for input {spec.name!r} (have: {sorted(reference) or 'none'})"
            )
        data = _reference_rows(spec, np.asarray(reference[spec.name]))
        names = list((feature_names or {}).get(spec.name) or layout.names())
        if len(names) != layout.features:
            raise ProfileError(
                f"input {spec.name!r}: {len(names)} feature names for {layout.features} features"
            )
        values = _features(data, layout)
        dtype = compare_dtype(spec, layout)
        inputs[spec.name] = InputProfile(
            layout.kind,
            len(data),
            tuple(_feature_profile(n, values[:, i], dtype) for i, n in enumerate(names)),
        )
    return DriftProfile(inputs, source, not_profiled)


def read_reference(path: Path, specs: Sequence[Spec]) -> dict[str, np.ndarray]:
    """Reference rows from a file: `.npy` for a model with one input, `.npz` keyed by input name.

    Read without pickles (`allow_pickle=False`): the file comes from the user,
    and a pickle could run code.
    """
    profiled = [s.name for s in specs if not isinstance(layout_of(s), str)]
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                return {str(name): archive[name] for name in archive.files}
        if path.suffix != ".npy":
            raise ProfileError(f"{path.name}: reference data must be a .npy or .npz file")
        if len(profiled) != 1:
            raise ProfileError(
                f"{path.name}: a .npy holds one array, the model has {len(profiled)} profiled "
                f"inputs ({', '.join(profiled) or 'none'}); give an .npz keyed by input name"
            )
        return {profiled[0]: np.load(path, allow_pickle=False)}
    except (OSError, ValueError) as exc:
        if isinstance(exc, ProfileError):
            raise
        raise ProfileError(f"{path.name} cannot be read as numpy data: {exc}") from exc


def _reference_rows(spec: Spec, data: np.ndarray) -> np.ndarray:
    expected = [d for d in spec.shape[1:]]
    fits = data.ndim == len(spec.shape) and all(
        e == -1 or e == d for e, d in zip(expected, data.shape[1:], strict=True)
    )
    if not fits:
        raise ProfileError(
            f"reference data for input {spec.name!r} has shape {list(data.shape)}, "
            f"the input is {list(spec.shape)} (-1 is any size)"
        )
    if len(data) < MIN_ROWS:
        raise ProfileError(
            f"reference data for input {spec.name!r} has {len(data)} rows; a profile needs "
            f"at least {MIN_ROWS} ({ROWS_PER_BIN} per bin, 2 bins)"
        )
    if data.dtype.kind not in "biuf":
        raise ProfileError(f"reference data for input {spec.name!r} is not numeric ({data.dtype})")
    # In the input's own type, as requests arrive: the cut points are then
    # values live inputs can equal exactly.
    rows = np.ascontiguousarray(data, dtype=spec.dtype)
    if rows.dtype.kind == "f" and not np.isfinite(rows).all():
        raise ProfileError(f"reference data for input {spec.name!r} holds NaN or infinity")
    return rows


def _features(data: np.ndarray, layout: Layout) -> np.ndarray:
    """[rows, features] in float64: the columns, or the per-row summaries (as counted live)."""
    if layout.kind == COLUMNS:
        return data.reshape(len(data), layout.width).astype(np.float64)
    return _Summariser(layout.width, len(data), data.dtype)(data).copy()


def _feature_profile(name: str, values: np.ndarray, dtype: np.dtype) -> FeatureProfile:
    bins = min(MAX_BINS, len(values) // ROWS_PER_BIN)
    cuts = np.quantile(values, np.arange(1, bins) / bins, method="inverted_cdf")
    lowest = values.min()
    edges = np.unique(cuts)
    edges = edges[edges > lowest]
    if edges.size == 0:
        # Constant in training: below, exactly, above. The next value up is
        # taken in the type counting compares in, so it stays a distinct cut.
        above = np.nextafter(dtype.type(lowest), dtype.type(np.inf))
        edges = np.array([lowest, float(above)])
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=edges.size + 1)
    return FeatureProfile(
        name,
        tuple(float(e) for e in edges),
        tuple(float(c) / len(values) for c in counts),
    )


# -- counting live inputs ---------------------------------------------------


class _Summariser:
    """Per-row mean and standard deviation of each channel, in preallocated rows.

    The rows are [means of the channels, standard deviations of the
    channels]: the feature order of a `channels` profile. Sums are taken in
    float32 or float64 inputs' own type (no cast, so no copy of the batch:
    `np.add.reduce` and `np.vecdot` read it in place); integer and float16
    inputs are summed in float64, a cast numpy makes through its fixed-size
    buffers, since uint8 sums of squares overflow at once. The rest is
    float64, and `one` does it in Python for a one-row batch with the same
    operations in the same order, so both give the same bits.
    """

    def __init__(self, channels: int, rows: int, dtype: np.dtype) -> None:
        self.channels = channels
        self._in_place = dtype in (np.dtype(np.float32), np.dtype(np.float64))
        accumulator = dtype if self._in_place else np.dtype(np.float64)
        self._sums = np.empty((rows, 2, channels), dtype=accumulator)
        self._stats = np.empty((rows, 2, channels))
        self._squared_means = np.empty((rows, channels))

    def _sum(self, data: np.ndarray) -> tuple[np.ndarray, float]:
        m = len(data)
        grouped = data.reshape(m, self.channels, -1)
        sums = self._sums[:m]
        # An infinite pixel gives inf - inf somewhere: NaN, counted in the lowest
        # bin, not a warning in the server's log for every such request.
        with np.errstate(invalid="ignore", over="ignore"):
            if self._in_place:
                np.add.reduce(grouped, axis=2, out=sums[:, 0])
                np.vecdot(grouped, grouped, out=sums[:, 1])
            else:
                np.add.reduce(grouped, axis=2, dtype=np.float64, out=sums[:, 0])
                np.einsum("ijk,ijk->ij", grouped, grouped, out=sums[:, 1], dtype=np.float64)
        return sums, 1.0 / max(grouped.shape[2], 1)

    def __call__(self, data: np.ndarray) -> np.ndarray:
        """[rows, 2 x channels] in float64: a view of the summariser's own rows."""
        sums, inverse = self._sum(data)
        m = len(sums)
        stats = self._stats[:m]
        means, spreads = stats[:, 0], stats[:, 1]
        # Means and means of squares, then sqrt(max(E[x^2] - E[x]^2, 0)).
        # In float64 (a Python float would be weak and keep float32 sums in float32).
        with np.errstate(invalid="ignore", over="ignore"):
            np.multiply(sums, inverse, out=stats, dtype=np.float64)
            squared = self._squared_means[:m]
            np.multiply(means, means, out=squared)
            np.subtract(spreads, squared, out=spreads)
            np.maximum(spreads, 0.0, out=spreads)
            np.sqrt(spreads, out=spreads)
        return stats.reshape(m, 2 * self.channels)

    def one(self, data: np.ndarray) -> list[float]:
        """The same for a batch of one row, as a list: two numpy calls, then Python floats."""
        sums, inverse = self._sum(data)
        totals, squares = sums[0].tolist()
        means = [t * inverse for t in totals]
        spreads = [q * inverse - mean * mean for q, mean in zip(squares, means, strict=True)]
        # max(v, 0) as np.maximum has it, NaN included (NaN then lands in the lowest bin).
        return means + [math.sqrt(v) if v > 0 else 0.0 for v in spreads]


@dataclass(frozen=True)
class InputDrift:
    """One input's window, read at a scrape."""

    input: str
    #: rows counted in the window
    rows: int
    #: feature -> PSI of the window against the training shares (empty without rows)
    psi: dict[str, float]


class _InputCounter:
    """Survival counts of one input in a ring of time slots (see the module docstring)."""

    def __init__(self, spec: Spec, profile: InputProfile, slots: int) -> None:
        layout = layout_of(spec)
        assert isinstance(layout, Layout)  # DriftProfile.check ran
        self.name = spec.name
        self.layout = layout
        self.feature_names = [f.name for f in profile.features]
        features = len(profile.features)
        cuts = max(len(f.edges) for f in profile.features)
        dtype = compare_dtype(spec, layout)
        # Padding cut points are NaN: x >= NaN is always false, so they count nothing.
        edges = np.full((cuts, features), np.nan, dtype=dtype)
        reference = np.zeros((cuts + 1, features))
        for i, f in enumerate(profile.features):
            edges[: len(f.edges), i] = f.edges
            reference[: len(f.shares), i] = f.shares
        self.edges = edges[:, None, :]  # [cuts, 1, features]: broadcast over rows
        self.reference = np.maximum(reference, EPSILON)
        self.survivors = np.zeros((slots, cuts, features), dtype=np.int64)
        #: each slot's survivors, as views made once: a view costs a request time too
        self.slot_survivors = list(self.survivors)
        #: rows counted per slot (all, and through the survivors), Python ints
        self.rows = [0] * slots
        self.batched_rows = [0] * slots
        # Requests of one row of a few columns, the most common, are binned
        # in Python: bisect on each column's cut points into flat per-slot lists.
        self._bins = cuts + 1
        self._cuts_py = [edges[: len(f.edges), i].tolist() for i, f in enumerate(profile.features)]
        self._offsets = [i * self._bins for i in range(features)]
        self.row_bins = [[0] * (features * self._bins) for _ in range(slots)]
        self._above = np.empty((cuts, CHUNK_ROWS, features), dtype=bool)
        self._above_u8 = self._above.view(np.uint8)
        self._chunk_sum = np.empty((cuts, features), dtype=np.uint8)
        self._summarise: _Summariser | None = None
        if layout.kind == CHANNELS:
            self._summarise = _Summariser(layout.width, CHUNK_ROWS, spec.dtype)
        self._in_python = features <= PYTHON_COLUMNS

    def clear(self, slot: int) -> None:
        self.slot_survivors[slot].fill(0)
        self.rows[slot] = self.batched_rows[slot] = 0
        self.row_bins[slot] = [0] * len(self.row_bins[slot])

    def count(self, batch: np.ndarray, slot: int) -> None:
        rows = len(batch)
        self.rows[slot] += rows
        if rows == 1 and self._in_python:
            flat = self.row_bins[slot]
            row = self._summarise.one(batch) if self._summarise else batch.ravel().tolist()
            for cuts, offset, value in zip(self._cuts_py, self._offsets, row, strict=True):
                # NaN (value != value) lands in the lowest bin, as in the batch path.
                flat[offset + (bisect.bisect_right(cuts, value) if value == value else 0)] += 1
            return
        self.batched_rows[slot] += rows
        survivors = self.slot_survivors[slot]
        for start in range(0, rows, CHUNK_ROWS):
            chunk = batch[start : start + CHUNK_ROWS]
            m = len(chunk)
            if self._summarise is not None:
                values = self._summarise(chunk)
            else:
                values = chunk.reshape(m, self.layout.width)
            np.greater_equal(values[None, :, :], self.edges, self._above[:, :m])
            np.add.reduce(self._above_u8[:, :m], axis=1, out=self._chunk_sum)
            np.add(survivors, self._chunk_sum, survivors)

    def window(self, slots: list[int]) -> tuple[np.ndarray, int]:
        """Bin counts [bins, features] and rows of these slots (under the monitor's lock)."""
        cuts, features = self.survivors.shape[1:]
        batched = sum(self.batched_rows[i] for i in slots)
        bounded = np.zeros((cuts + 2, features), dtype=np.int64)
        bounded[0] = batched
        bounded[1:-1] = self.survivors[slots].sum(axis=0)
        counts = bounded[:-1] - bounded[1:]
        if slots:
            single = np.array([self.row_bins[i] for i in slots], dtype=np.int64).sum(axis=0)
            counts += single.reshape(features, cuts + 1).T
        return counts, sum(self.rows[i] for i in slots)

    def psi(self, counts: np.ndarray, rows: int) -> dict[str, float]:
        if rows == 0:
            return {}
        live = np.maximum(counts / rows, EPSILON)
        scores = ((live - self.reference) * np.log(live / self.reference)).sum(axis=0)
        return {name: float(s) for name, s in zip(self.feature_names, scores, strict=True)}


class DriftMonitor:
    """Live counts of a model's profiled inputs over a sliding window, and their PSI."""

    def __init__(
        self,
        profile: DriftProfile,
        specs: Sequence[Spec],
        slot_seconds: float = SLOT_SECONDS,
        slots: int = WINDOW_SLOTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        profile.check(specs)
        by_name = {s.name: s for s in specs}
        self.profile = profile
        self.window_seconds = slot_seconds * slots
        self._slot_seconds = slot_seconds
        self._slots = slots
        self._clock = clock
        self._counters = [
            _InputCounter(by_name[name], p, slots) for name, p in profile.inputs.items()
        ]
        #: the time slot each ring position last counted (-1: never)
        self._slot_ids = [-1] * slots
        self._lock = threading.Lock()

    def count(self, inputs: Mapping[str, np.ndarray]) -> None:
        """Count one batch of validated inputs (called in the thread that runs the model)."""
        slot_id = int(self._clock() // self._slot_seconds)
        position = slot_id % self._slots
        with self._lock:
            if self._slot_ids[position] != slot_id:
                for counter in self._counters:
                    counter.clear(position)
                self._slot_ids[position] = slot_id
            for counter in self._counters:
                batch = inputs.get(counter.name)
                if batch is not None:
                    counter.count(batch, position)

    def snapshot(self) -> list[InputDrift]:
        """Each input's rows in the window and PSI per feature (for a scrape)."""
        now = int(self._clock() // self._slot_seconds)
        with self._lock:
            recent = [i for i, s in enumerate(self._slot_ids) if s >= 0 and s > now - self._slots]
            windows = [(c, *c.window(recent)) for c in self._counters]
        return [InputDrift(c.name, rows, c.psi(counts, rows)) for c, counts, rows in windows]

    def describe(self) -> dict[str, Any]:
        """What V2 model metadata says about drift for this model."""
        return {
            "profiled_inputs": {
                name: {"kind": p.kind, "features": [f.name for f in p.features], "rows": p.rows}
                for name, p in self.profile.inputs.items()
            },
            "not_profiled": dict(self.profile.not_profiled),
            "window_seconds": self.window_seconds,
            "source": self.profile.source,
        }


#: what V2 model metadata says for a model whose metadata.json has no profile
NO_PROFILE = (
    "no reference profile: input drift is not measured "
    "(add one with `modelplane store add --reference-data`)"
)
