"""The container executor: Docker or Podman, driven through their command line."""
