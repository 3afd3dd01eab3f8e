"""What a run leaves behind and how it reads: file modes, the summary's recipe names, sparsity and gzip size,
the ignore lines for the outputs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pytest_tinyml.report import Collector, optimization_figures, recipe_label

ROOT = Path(__file__).resolve().parents[1]
OUTPUT_IGNORES = [".tinyml_cache/", ".tinyml_history/", "tinyml-report*.json", "tinyml-report-latency-trend.png"]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_json_report_follows_the_umask(tmp_path, umask, mode):
    collector = Collector()
    collector.add("t.py::test_a", [("tinyml.flash_kb", 1.5)], "passed")
    old = os.umask(umask)
    try:
        collector.write_json(str(tmp_path / "out" / "r.json"))
    finally:
        os.umask(old)
    path = tmp_path / "out" / "r.json"
    assert path.stat().st_mode & 0o777 == mode
    assert json.loads(path.read_text())["tests"][0]["flash_kb"] == 1.5
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]  # no temp file left behind


def test_json_report_of_a_run_is_readable_by_the_group(pytester):
    pytester.makepyfile("import pytest_tinyml as t\ndef test_a(): t.record(model='m', flash_kb=1.0)")
    old = os.umask(0o022)
    try:
        pytester.runpytest("--tinyml-report=tinyml-report.json").assert_outcomes(passed=1)
    finally:
        os.umask(old)
    assert (pytester.path / "tinyml-report.json").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize(
    "recipe, params, label",
    [
        ("int8", {}, "int8"),
        ("int8", {"qat": True}, "qat int8"),
        ("int8", {"qat": False}, "int8"),
        ("int8", {"pruning": {"target_sparsity": 0.8, "sparsity": 0.7931}}, "pruned 0.80 int8"),
        ("float32", {"pruning": {"target_sparsity": 0.5}}, "pruned 0.50 float32"),
        ("int8", {"clustering": {"clusters": 16, "max_unique_values": 16}}, "clustered 16 int8"),
        ("int8", {"pruning": {"target_sparsity": 0.5}, "qat": True}, "pruned 0.50 qat int8"),
        ("unknown", None, "unknown"),
    ],
)
def test_recipe_label_names_what_the_artifact_records(recipe, params, label):
    assert recipe_label(recipe, params) == label


def test_optimization_figures_only_where_known():
    assert optimization_figures({"pruning": {"sparsity": 0.8}, "gzip_size": 1536}) == {"sparsity": 0.8, "gzip_kb": 1.5}
    assert optimization_figures({"clustering": {"clusters": 16}, "gzip_size": 1024}) == {"gzip_kb": 1.0}
    assert optimization_figures({"target": "tflm", "io_dtype": "int8"}) == {}


def test_outputs_are_ignored_by_git_and_documented():
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    readme = (ROOT / "README.md").read_text()
    for line in OUTPUT_IGNORES:
        assert line in ignored, f"{line} missing from .gitignore"
        assert line in readme, f"{line} not documented in README.md"


@pytest.mark.slow
def test_summary_names_qat_pruned_and_clustered_recipes(pytester):
    """Real recipes (no training where the recipe allows 0 epochs), real conversion, the summary as printed."""
    pytester.makepyfile(
        """
        import keras, numpy as np, pytest
        import pytest_tinyml as tinyml
        from pytest_tinyml import optimize

        @pytest.fixture(scope="module")
        def data():
            return tinyml.datasets.load("digits")

        @pytest.fixture(scope="module")
        def model(data):
            keras.utils.set_random_seed(0)
            m = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"),
                                  keras.layers.Dense(10, activation="softmax")], name="tiny")
            m.compile("adam", "sparse_categorical_crossentropy")
            m.fit(data.x_train, data.y_train, epochs=2, verbose=0)
            return m

        def convert(model, data):
            return tinyml.convert(model, "int8", representative=data.x_train[:200])

        def test_plain(model, data):
            tinyml.assert_budget(convert(model, data), flash_kb=1000)

        def test_pruned(model, data):
            result = optimize.prune(model, data, target_sparsity=0.8, epochs=1, backend="native",
                                    schedule="constant")
            artifact = convert(result.model, data)
            assert artifact.params["pruning"]["target_sparsity"] == 0.8
            assert artifact.params["gzip_size"] == optimize.gzip_size(artifact) < artifact.size
            tinyml.assert_budget(artifact, flash_kb=1000)

        def test_clustered(model, data):
            artifact = convert(optimize.cluster(model, data, clusters=16, epochs=0).model, data)
            assert artifact.params["clustering"]["clusters"] == 16
            tinyml.assert_budget(artifact, flash_kb=1000)

        def test_qat(model, data):
            tinyml.assert_budget(convert(optimize.qat(model, data, epochs=0), data), flash_kb=1000)
        """
    )
    # A subprocess: TensorFlow imported into this process would share it with the LiteRT / TFLM tests after.
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "ignore::pytest_tinyml.errors.CalibrationWarning")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*tinyml summary*", "test*model*recipe*flash KB*sparsity*gzip KB*"])
    rows = {line.split()[0]: line for line in result.stdout.lines if line.startswith("test_")}
    assert rows["test_plain"].split()[2] == "int8"
    assert " pruned 0.80 int8 " in rows["test_pruned"]
    assert " clustered 16 int8 " in rows["test_clustered"]
    assert " qat int8 " in rows["test_qat"]
    pruned = rows["test_pruned"].split()
    sparsity = float(pruned[pruned.index("int8") + 2])
    assert 0.75 <= sparsity <= 0.85
    assert rows["test_plain"].split()[4] == "-"  # plain int8: no sparsity known


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_history_records_and_saved_artifacts_follow_the_umask(tmp_path, umask, mode, mlp_int8):
    """One atomic writer (``_files.write_atomic``) for every output: no 0600 history records or models."""
    from test_history_store import board_record

    from pytest_tinyml.history.store import HistoryStore

    old = os.umask(umask)
    try:
        record_path = HistoryStore(tmp_path / "history").add(board_record())
        model_path = mlp_int8.save(tmp_path / "models" / "mlp.tflite")
    finally:
        os.umask(old)
    for path in (record_path, model_path):
        assert path.stat().st_mode & 0o777 == mode, path
        assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind
    assert model_path.read_bytes() == mlp_int8.content
