"""Input drift: reference profiles in metadata.json, live counts, PSI on /metrics.

The bundled wine model's profile is its training split (133 rows, 13
columns); its held-out rows (45) score low in every column, and the same
rows with one column shifted by two training standard deviations score above
the alert's threshold in that column only. The threshold is read from the
alert rule (manifests/monitoring/rules/modelplane.rules.yaml), so a change
there is tested here too. tests/monitoring/test_drift_alert.py has a real
Prometheus fire the alert.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tracemalloc
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from prometheus_client.parser import text_string_to_metric_families

from predictors.drift import (
    CHUNK_ROWS,
    MIN_ROWS,
    NO_PROFILE,
    DriftMonitor,
    DriftProfile,
    ProfileError,
    build_profile,
)
from predictors.metadata import MetadataError, ModelMetadata, TensorSpec
from predictors.training import build, datasets
from tests.monitoring.support import alerts
from tests.support import MODEL_STORE, MODELPLANE, Server, start_server

WINE = datasets.wine(build.SEED)
DIGITS = datasets.digits(build.SEED)
WINE_SPEC = TensorSpec("features", "FP32", (-1, 13))
DIGITS_SPEC = TensorSpec("image", "FP32", (-1, 1, 8, 8))
RECIPES = {r.family: r for r in build.RECIPES}


def alert_threshold() -> float:
    """The PSI above which ModelplaneInputDrift fires, from the rule itself."""
    [rule] = [a for a in alerts() if a["alert"] == "ModelplaneInputDrift"]
    found = re.search(r"\)\s*>\s*([0-9.]+)\s*$", rule["expr"].strip())
    assert found, rule["expr"]
    return float(found.group(1))


THRESHOLD = alert_threshold()


def shifted(rows: np.ndarray, column: int) -> np.ndarray:
    """The rows with one column moved up by two standard deviations of the training data."""
    out = rows.copy()
    out[:, column] += 2 * WINE.x_train[:, column].std()
    return out


def psi_of(monitor: DriftMonitor, input_name: str) -> dict[str, float]:
    [window] = [w for w in monitor.snapshot() if w.input == input_name]
    return window.psi


# -- profiles ----------------------------------------------------------------


@pytest.mark.parametrize("model", ["wine-onnx", "wine-torch", "digits-onnx", "digits-torch"])
def test_bundled_models_carry_their_training_split_s_profile(model: str) -> None:
    meta = ModelMetadata.read(MODEL_STORE / model / "1")
    recipe = RECIPES[model.split("-")[0]]
    assert meta.drift_profile == build.drift_profile(recipe, recipe.split(build.SEED))


def test_wine_profile_has_quantile_bins_per_named_column() -> None:
    profile = build.drift_profile(RECIPES["wine"], WINE).inputs["features"]
    assert profile.kind == "columns" and profile.rows == len(WINE.x_train) == 133
    assert [f.name for f in profile.features] == build.feature_names("wine")
    for feature in profile.features:
        # 133 rows: 4 bins of about a quarter each (ties make some a little larger).
        assert len(feature.edges) == 3 and len(feature.shares) == 4
        assert sum(feature.shares) == pytest.approx(1)
        assert all(0.15 < s < 0.35 for s in feature.shares), feature
    digits = build.drift_profile(RECIPES["digits"], DIGITS).inputs["image"]
    assert digits.kind == "channels"
    assert [f.name for f in digits.features] == ["row_mean", "row_std"]
    assert all(len(f.shares) == 10 for f in digits.features)


def test_profile_json_round_trips_through_metadata(tmp_path: Path) -> None:
    meta = ModelMetadata.read(MODEL_STORE / "wine-onnx" / "1")
    meta.write(tmp_path)
    assert ModelMetadata.read(tmp_path).drift_profile == meta.drift_profile
    meta.drift_profile = None
    meta.write(tmp_path)
    assert "drift_profile" not in json.loads((tmp_path / "metadata.json").read_text())


# -- the scenario, in process ------------------------------------------


def test_heldout_rows_stay_low_and_a_two_sd_shift_crosses_in_that_column_only() -> None:
    profile = build.drift_profile(RECIPES["wine"], WINE)
    names = [f.name for f in profile.inputs["features"].features]
    monitor = DriftMonitor(profile, [WINE_SPEC])
    monitor.count({"features": WINE.x_test})
    heldout = psi_of(monitor, "features")
    assert max(heldout.values()) < THRESHOLD / 2, heldout
    for column, name in enumerate(names):
        monitor = DriftMonitor(profile, [WINE_SPEC])
        monitor.count({"features": shifted(WINE.x_test, column)})
        scores = psi_of(monitor, "features")
        assert scores[name] > THRESHOLD, (name, scores[name])
        others = {n: s for n, s in scores.items() if n != name}
        assert others == {n: heldout[n] for n in others}, name


@pytest.mark.parametrize("batch", [1, 7, CHUNK_ROWS + 45])
def test_live_counting_bins_each_row_as_training_did(batch: int) -> None:
    """Counting the training rows themselves gives the training shares: a PSI of 0."""
    for spec, split in ((WINE_SPEC, WINE), (DIGITS_SPEC, DIGITS)):
        profile = build_profile({spec.name: split.x_train}, [spec], "training split")
        monitor = DriftMonitor(profile, [spec])
        rows = np.concatenate([split.x_train] * 3)
        for start in range(0, len(rows), batch):
            monitor.count({spec.name: rows[start : start + batch]})
        [window] = monitor.snapshot()
        assert window.rows == len(rows)
        assert max(window.psi.values()) < 1e-9, (spec.name, window.psi)


@pytest.mark.parametrize(
    ("datatype", "shape"),
    [("FP32", (13,)), ("FP32", (40,)), ("INT64", (5,)), ("FP32", (3, 5, 5)), ("UINT8", (2, 7, 7))],
)
def test_one_row_requests_and_batches_land_in_the_same_bins(
    datatype: str, shape: tuple[int, ...]
) -> None:
    """One-row requests are binned in Python, batches in numpy: the bins must be the same,
    for values equal to a cut point, NaN and infinities too (columns and image summaries)."""
    spec = TensorSpec("x", datatype, (-1, *shape))
    rng = np.random.default_rng(1)
    # Ties at cut points for columns (integers); rounding in the summaries of images
    # (25 and 49 pixels, uneven values), where both paths must round alike.
    draw = rng.integers if spec.dtype.kind != "f" or len(shape) == 1 else rng.uniform
    train = draw(0, 20, size=(300, *shape)).astype(spec.dtype)
    profile = build_profile({"x": train}, [spec], "synthetic")
    # Training rows again (their values are the cut points), and new ones.
    live = np.concatenate([train[:100], draw(0, 23, size=(100, *shape))]).astype(spec.dtype)
    if spec.dtype.kind == "f":
        flat = live.reshape(len(live), -1)
        flat[::7, 0], flat[::11, 1], flat[::13, 2] = np.nan, np.inf, -np.inf
    one_by_one, batched = DriftMonitor(profile, [spec]), DriftMonitor(profile, [spec])
    for row in live:
        one_by_one.count({"x": row[None]})
    batched.count({"x": live})
    assert one_by_one.snapshot() == batched.snapshot()


def test_digits_brightness_and_contrast_changes_are_seen() -> None:
    profile = build.drift_profile(RECIPES["digits"], DIGITS)
    for changed, moved in ((DIGITS.x_test * 0.6, "row_mean"), (DIGITS.x_test**2, "row_std")):
        monitor = DriftMonitor(profile, [DIGITS_SPEC])
        monitor.count({"image": DIGITS.x_test})
        assert max(psi_of(monitor, "image").values()) < THRESHOLD / 2
        monitor = DriftMonitor(profile, [DIGITS_SPEC])
        monitor.count({"image": changed.astype(np.float32)})
        assert psi_of(monitor, "image")[moved] > THRESHOLD, moved


def test_uint8_images_are_summarised_per_channel_without_overflow() -> None:
    spec = TensorSpec("pixels", "UINT8", (-1, 3, 16, 16))
    rng = np.random.default_rng(0)
    # Bright images: sums of squares of 256 values near 255 overflow any small integer.
    train = rng.integers(150, 256, size=(600, 3, 16, 16), dtype=np.uint8)
    profile = build_profile({"pixels": train}, [spec], "synthetic")
    names = [f.name for f in profile.inputs["pixels"].features]
    assert names == [f"channel_{c}_{s}" for s in ("mean", "std") for c in range(3)]
    monitor = DriftMonitor(profile, [spec])
    monitor.count({"pixels": train})
    assert max(psi_of(monitor, "pixels").values()) < 1e-9
    darker = train.copy()
    darker[:, 1] -= 40  # one channel only
    monitor = DriftMonitor(profile, [spec])
    monitor.count({"pixels": darker})
    scores = psi_of(monitor, "pixels")
    assert scores["channel_1_mean"] > THRESHOLD
    assert {n for n, s in scores.items() if s > 1e-9} == {"channel_1_mean"}


def test_a_constant_training_column_flags_any_other_value() -> None:
    spec = TensorSpec("x", "FP32", (-1, 2))
    train = np.stack([np.full(100, 5.0), np.arange(100.0)], axis=1).astype(np.float32)
    profile = build_profile({"x": train}, [spec], "synthetic")
    monitor = DriftMonitor(profile, [spec])
    monitor.count({"x": train})
    assert max(psi_of(monitor, "x").values()) < 1e-9
    moved = train.copy()
    moved[:, 0] = np.nextafter(np.float32(5.0), np.float32(6.0))
    monitor = DriftMonitor(profile, [spec])
    monitor.count({"x": moved})
    assert psi_of(monitor, "x")["column_0"] > THRESHOLD


# -- the window ----------------------------------------------------------------


def test_the_window_forgets_minutes_older_than_its_length() -> None:
    now = [0.0]
    profile = build.drift_profile(RECIPES["wine"], WINE)
    monitor = DriftMonitor(profile, [WINE_SPEC], slot_seconds=60, slots=30, clock=lambda: now[0])
    for _ in range(3):
        monitor.count({"features": shifted(WINE.x_test, 0)})  # minute 0: drifted
    now[0] = 10 * 60.0
    monitor.count({"features": WINE.x_test})  # minute 10: normal
    [window] = monitor.snapshot()
    assert window.rows == 4 * len(WINE.x_test)
    assert window.psi["alcohol"] > THRESHOLD
    now[0] = 30 * 60.0 + 1  # minute 30: minute 0 has left the window, minute 10 has not
    [window] = monitor.snapshot()
    assert window.rows == len(WINE.x_test)
    assert window.psi["alcohol"] < THRESHOLD / 2
    now[0] = 40 * 60.0 + 1  # everything has left: no rows, no score
    [window] = monitor.snapshot()
    assert (window.rows, window.psi) == (0, {})
    # The ring slot of minute 0 is reused at minute 60, cleared first.
    now[0] = 60 * 60.0
    monitor.count({"features": WINE.x_test})
    assert monitor.snapshot()[0].rows == len(WINE.x_test)


def test_counting_keeps_no_memory_and_a_large_batch_no_copy() -> None:
    profile = build.drift_profile(RECIPES["digits"], DIGITS)
    monitor = DriftMonitor(profile, [DIGITS_SPEC])
    big = np.ascontiguousarray(np.concatenate([DIGITS.x_test] * 4))  # 1800 rows, 460 KB
    monitor.count({"image": big})
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(200):
            monitor.count({"image": big[:1]})
        monitor.count({"image": big})
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert current - before < 1024, "counting keeps memory per request"
    # numpy's fixed-size iteration buffers at most: nothing the size of the batch.
    assert peak - before < big.nbytes / 4, peak - before


# -- refusals --------------------------------------------------------------------


def test_profiles_that_do_not_fit_are_refused_with_the_input_named() -> None:
    raw = ModelMetadata.read(MODEL_STORE / "wine-onnx" / "1").to_dict()
    narrower = json.loads(json.dumps(raw))
    narrower["inputs"][0]["shape"] = [-1, 12]
    with pytest.raises(MetadataError, match=r"input 'features'.*needs a profile of 12 features"):
        ModelMetadata.from_dict(narrower)
    renamed = json.loads(json.dumps(raw))
    renamed["drift_profile"]["inputs"]["x"] = renamed["drift_profile"]["inputs"].pop("features")
    with pytest.raises(MetadataError, match="the model has no input 'x'"):
        ModelMetadata.from_dict(renamed)
    unsorted = json.loads(json.dumps(raw))
    unsorted["drift_profile"]["inputs"]["features"]["features"][0]["edges"].reverse()
    with pytest.raises(MetadataError, match="feature 'alcohol': edges must be"):
        ModelMetadata.from_dict(unsorted)
    with pytest.raises(ProfileError, match=f"at least {MIN_ROWS}"):
        build_profile({"features": WINE.x_train[:20]}, [WINE_SPEC], "too few")
    with pytest.raises(ProfileError, match=r"shape \[133, 12\], the input is \[-1, 13\]"):
        build_profile({"features": WINE.x_train[:, :12]}, [WINE_SPEC], "too narrow")
    with pytest.raises(ProfileError, match="NaN or infinity"):
        build_profile({"features": np.full((100, 13), np.nan)}, [WINE_SPEC], "nan")


def test_inputs_that_cannot_be_profiled_are_listed_with_the_reason() -> None:
    specs = [WINE_SPEC, TensorSpec("note", "BYTES", (-1, 1)), TensorSpec("scale", "FP32", (1,))]
    profile = build_profile({"features": WINE.x_train}, specs, "mixed")
    assert list(profile.inputs) == ["features"]
    assert profile.not_profiled == {
        "note": "BYTES inputs are not profiled",
        "scale": "inputs without a batch axis first are not profiled",
    }
    assert DriftProfile.from_dict(json.loads(json.dumps(profile.to_dict()))) == profile


# -- served ------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MODELPLANE, *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def drift_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled wine-onnx, the same file added without a profile, and with one from a .npy."""
    root = tmp_path_factory.mktemp("drift")
    store = root / "store"
    shutil.copytree(MODEL_STORE / "wine-onnx", store / "wine-onnx")
    model = str(MODEL_STORE / "wine-onnx" / "1" / "model.onnx")
    plain = run_cli("store", "add", "--store", str(store), "--name", "wine-plain", model)
    assert plain.returncode == 0, plain.stderr
    assert "no drift profile" in plain.stdout
    np.save(root / "train.npy", WINE.x_train)
    added = run_cli(
        "store", "add", "--store", str(store), "--name", "wine-ref",
        "--reference-data", str(root / "train.npy"), model,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "drift profile of features: 13 columns features, 133 rows" in added.stdout
    return store


@pytest.fixture(scope="module")
def server(drift_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    started = start_server(drift_store, tmp_path_factory.mktemp("serve"))
    try:
        yield started
    finally:
        started.stop()


def drift_series(server: Server) -> dict[str, dict[tuple[str, ...], float]]:
    with urllib.request.urlopen(f"http://{server.http_url}/metrics", timeout=10) as response:
        text = response.read().decode()
    found: dict[str, dict[tuple[str, ...], float]] = {"psi": {}, "rows": {}}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "modelplane_input_drift_psi":
                key = (labels["model_name"], labels["input"], labels["feature"])
                found["psi"][key] = sample.value
            elif sample.name == "modelplane_input_drift_window_rows":
                found["rows"][(labels["model_name"], labels["input"])] = sample.value
    return found


def send(server: Server, model: str, rows: np.ndarray, per_request: int = 5) -> None:
    """Half the requests over HTTP (binary tensors), half over gRPC: both are counted."""
    http = httpclient.InferenceServerClient(server.http_url)
    grpc = grpcclient.InferenceServerClient(server.grpc_url)
    try:
        for i, start in enumerate(range(0, len(rows), per_request)):
            chunk = np.ascontiguousarray(rows[start : start + per_request])
            module, client = (httpclient, http) if i % 2 else (grpcclient, grpc)
            tensor = module.InferInput("features", list(chunk.shape), "FP32")
            tensor.set_data_from_numpy(chunk)
            client.infer(model, [tensor])
    finally:
        http.close()
        grpc.close()


def test_served_wine_scores_heldout_low_then_the_shifted_column_high(server: Server) -> None:
    names = build.feature_names("wine")
    assert names is not None
    send(server, "wine-onnx", WINE.x_test)
    series = drift_series(server)
    assert series["rows"][("wine-onnx", "features")] == len(WINE.x_test)
    heldout = {f: v for (m, _, f), v in series["psi"].items() if m == "wine-onnx"}
    assert set(heldout) == set(names)
    assert max(heldout.values()) < THRESHOLD / 2, heldout

    # Four times as many shifted rows as held-out ones: the window holds both.
    column = names.index("proline")
    send(server, "wine-onnx", np.concatenate([shifted(WINE.x_test, column)] * 4))
    series = drift_series(server)
    assert series["rows"][("wine-onnx", "features")] == 5 * len(WINE.x_test)
    scores = {f: v for (m, _, f), v in series["psi"].items() if m == "wine-onnx"}
    assert scores["proline"] > THRESHOLD
    assert {f for f, v in scores.items() if v > THRESHOLD} == {"proline"}
    # The other columns still hold the held-out rows' distribution, five times over.
    for name in names:
        if name != "proline":
            assert scores[name] == pytest.approx(heldout[name], rel=1e-9), name


def test_a_model_without_a_profile_exports_nothing_and_says_so(server: Server) -> None:
    send(server, "wine-plain", WINE.x_test)
    series = drift_series(server)
    assert not any(key[0] == "wine-plain" for key in [*series["psi"], *series["rows"]])
    http = httpclient.InferenceServerClient(server.http_url)
    try:
        assert http.get_model_metadata("wine-plain")["parameters"]["drift"] == NO_PROFILE
        described = http.get_model_metadata("wine-onnx")["parameters"]["drift"]
    finally:
        http.close()
    assert described["profiled_inputs"]["features"]["rows"] == 133
    assert described["window_seconds"] == 1800


def test_store_add_reference_data_profiles_the_rows_given(drift_store: Path) -> None:
    added = ModelMetadata.read(drift_store / "wine-ref" / "1").drift_profile
    bundled = ModelMetadata.read(MODEL_STORE / "wine-onnx" / "1").drift_profile
    assert added is not None and bundled is not None
    ours, theirs = added.inputs["features"], bundled.inputs["features"]
    # The same rows give the same bins; without names the columns are numbered.
    assert [(f.edges, f.shares) for f in ours.features] == [
        (f.edges, f.shares) for f in theirs.features
    ]
    assert [f.name for f in ours.features] == [f"column_{i}" for i in range(13)]
    assert added.source == "modelplane store add --reference-data train.npy"


def test_store_add_refuses_reference_data_that_does_not_fit(tmp_path: Path) -> None:
    model = str(MODEL_STORE / "wine-onnx" / "1" / "model.onnx")
    store = tmp_path / "store"
    cases = {
        "narrow.npy": (WINE.x_train[:, :12], "shape [133, 12], the input is [-1, 13]"),
        "few.npy": (WINE.x_train[:10], f"has 10 rows; a profile needs at least {MIN_ROWS}"),
        "pickled.npy": (np.array([{"a": 1}] * 100, dtype=object), "cannot be read as numpy data"),
        "other.npz": ({"x": WINE.x_train}, "reference data for ['x'], which the model does not"),
        "table.csv": (None, "must be a .npy or .npz file"),
    }
    for name, (data, message) in cases.items():
        path = tmp_path / name
        if isinstance(data, dict):
            np.savez(path, **data)
        elif data is None:
            path.write_text("1,2,3\n")
        else:
            np.save(path, data, allow_pickle=True)
        result = run_cli(
            "store", "add", "--store", str(store), "--name", "w", "--reference-data", str(path),
            model,
        )  # fmt: skip
        assert result.returncode == 2, (name, result.stdout, result.stderr)
        assert message in result.stderr, (name, result.stderr)
        assert "the store was not changed" in result.stderr
        assert not (store / "w").exists(), name


def test_mlflow_import_carries_the_profile_the_training_run_logged(tmp_path: Path) -> None:
    pytest.importorskip("mlflow", reason="the mlflow extra is not installed")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    trained = run_cli("train", "--family", "wine", "--epochs", "2", "--tracking-uri", uri)
    assert trained.returncode == 0, trained.stderr
    store = tmp_path / "store"
    imported = run_cli(
        "store", "import", "models:/mlflow-wine/1", "--store", str(store), "--tracking-uri", uri
    )
    assert imported.returncode == 0, imported.stderr
    expected = build.drift_profile(RECIPES["wine"], WINE)
    for name in ("mlflow-wine-onnx", "mlflow-wine-torch"):
        assert ModelMetadata.read(store / name / "1").drift_profile == expected, name
