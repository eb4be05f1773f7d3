"""localci: run a repository's .gitlab-ci.yml pipeline locally, offline, without Docker."""

# The one place the version is written: pyproject.toml reads it, CHANGELOG.md describes it.
__version__ = "0.1.0"
