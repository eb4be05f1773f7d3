"""Shared fixtures: a hermetic environment for every test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

GIT_ENV = {
    "GIT_AUTHOR_NAME": "localci-tests",
    "GIT_AUTHOR_EMAIL": "tests@localci.invalid",
    "GIT_COMMITTER_NAME": "localci-tests",
    "GIT_COMMITTER_EMAIL": "tests@localci.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
    "NO_COLOR": "1",
    "COLUMNS": "120",
}


@pytest.fixture(autouse=True)
def _hermetic_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)
    for key in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "FORCE_COLOR"):
        monkeypatch.delenv(key, raising=False)
    cache = tmp_path_factory.getbasetemp() / "localci-cache"
    monkeypatch.setenv("LOCALCI_CACHE_DIR", os.environ.get("LOCALCI_TEST_CACHE", str(cache)))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return tmp_path / "project"
