"""Executes a plan: workspaces, venvs, job processes, caches and artifacts."""
