"""localci: run a repository's .gitlab-ci.yml pipeline locally, offline, without Docker."""

__version__ = "0.1.0"
