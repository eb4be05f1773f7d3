"""Iris-like species classifier: data loading, a numpy softmax model and its training script."""
