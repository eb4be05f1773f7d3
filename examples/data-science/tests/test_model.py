import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from src.data_loader import load_dataset, train_test_split
from src.model import SoftmaxClassifier, softmax

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "raw" / "iris-like.csv"


@pytest.fixture(scope="module")
def split():
    return train_test_split(load_dataset(DATA), test_fraction=0.2, seed=42)


def test_softmax_rows_sum_to_one():
    probs = softmax(np.array([[1.0, 2.0, 3.0], [1000.0, 0.0, -1000.0]]))
    assert np.allclose(probs.sum(axis=1), 1.0)
    assert probs[1, 0] == pytest.approx(1.0)


def test_model_learns_the_species(split):
    train, test = split
    model = SoftmaxClassifier().fit(train.features, train.labels, train.classes)
    assert model.accuracy(test.features, test.labels) >= 0.85


def test_untrained_model_refuses_to_predict():
    with pytest.raises(RuntimeError):
        SoftmaxClassifier().predict(np.zeros((1, 4)))


def test_save_and_load_round_trip(split, tmp_path):
    train, test = split
    model = SoftmaxClassifier(epochs=50).fit(train.features, train.labels, train.classes)
    model.save(tmp_path / "model.json")
    loaded = SoftmaxClassifier.load(tmp_path / "model.json")
    assert loaded.classes == model.classes
    assert np.allclose(loaded.predict_proba(test.features), model.predict_proba(test.features))


def test_app_script_agrees_with_the_model(split, tmp_path):
    train, _ = split
    model = SoftmaxClassifier().fit(train.features, train.labels, train.classes)
    model.save(tmp_path / "model.json")
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "app" / "predict.py"),
            "--model",
            str(tmp_path / "model.json"),
            "5.0",
            "3.4",
            "1.5",
            "0.2",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.startswith("setosa")
    assert json.loads((tmp_path / "model.json").read_text())["classes"][0] == "setosa"


def test_training_script_writes_model_and_metrics(tmp_path, capsys):
    from src.train_model import main

    model_path, metrics_path = tmp_path / "m" / "model.json", tmp_path / "metrics.json"
    code = main(["--data", str(DATA), "--model", str(model_path), "--metrics", str(metrics_path)])
    assert code == 0
    assert "test accuracy:" in capsys.readouterr().out
    assert json.loads(metrics_path.read_text())["test_accuracy"] >= 0.85
    assert SoftmaxClassifier.load(model_path).classes == ("setosa", "versicolor", "virginica")


def test_training_script_fails_below_the_accuracy_floor(tmp_path):
    from src.train_model import main

    args = [
        "--data",
        str(DATA),
        "--model",
        str(tmp_path / "model.json"),
        "--metrics",
        str(tmp_path / "metrics.json"),
        "--epochs",
        "0",
        "--min-accuracy",
        "0.99",
    ]
    assert main(args) == 1
