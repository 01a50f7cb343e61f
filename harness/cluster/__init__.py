"""Cluster backends (Docker, local processes) and registry-free images."""
