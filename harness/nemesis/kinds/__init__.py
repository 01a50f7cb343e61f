"""The fault kinds, one module each; :mod:`harness.nemesis.registry` finds every module
here that defines ``KIND`` (modules whose name starts with ``_`` are helpers)."""
