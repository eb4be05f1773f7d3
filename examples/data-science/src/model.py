"""A multinomial logistic-regression (softmax) classifier in plain numpy, saved as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


class SoftmaxClassifier:
    def __init__(self, learning_rate: float = 0.5, epochs: int = 500, l2: float = 1e-3) -> None:
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.l2 = l2
        self.weights: np.ndarray | None = None  # (n_features + 1, n_classes), last row = bias
        self.mean: np.ndarray | None = None
        self.scale: np.ndarray | None = None
        self.classes: tuple[str, ...] = ()

    def fit(
        self, features: np.ndarray, labels: np.ndarray, classes: tuple[str, ...]
    ) -> SoftmaxClassifier:
        self.classes = tuple(classes)
        self.mean = features.mean(axis=0)
        self.scale = features.std(axis=0) + 1e-12
        x = self._design(features)
        onehot = np.eye(len(classes))[labels]
        self.weights = np.zeros((x.shape[1], len(classes)))
        for _ in range(self.epochs):
            grad = x.T @ (softmax(x @ self.weights) - onehot) / len(x)
            grad[:-1] += self.l2 * self.weights[:-1]
            self.weights -= self.learning_rate * grad
        return self

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        if self.weights is None:
            raise RuntimeError("the model is not trained")
        return softmax(self._design(features) @ self.weights)

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.predict_proba(features).argmax(axis=1)

    def accuracy(self, features: np.ndarray, labels: np.ndarray) -> float:
        return float((self.predict(features) == labels).mean())

    def save(self, path: str | Path) -> None:
        if self.weights is None or self.mean is None or self.scale is None:
            raise RuntimeError("the model is not trained")
        payload = {
            "classes": list(self.classes),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "weights": self.weights.tolist(),
        }
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> SoftmaxClassifier:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
        model = cls()
        model.classes = tuple(payload["classes"])
        model.mean = np.array(payload["mean"])
        model.scale = np.array(payload["scale"])
        model.weights = np.array(payload["weights"])
        return model

    def _design(self, features: np.ndarray) -> np.ndarray:
        scaled = (features - self.mean) / self.scale
        return np.hstack([scaled, np.ones((len(features), 1))])


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)
