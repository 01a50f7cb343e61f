"""Builds the optional C search of the linearizability checker.

Everything else is in pyproject.toml. The extension is optional: without a C
compiler the install still succeeds and the checker uses its Python search
(same verdicts, slower on small histories); ``harness.checker.native.AVAILABLE``
says which one runs, and CI fails when the C one is missing.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "harness.checker._wglnative",
            sources=["harness/checker/_wglnative.c"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter",
                                "-Wno-missing-field-initializers", "-Wno-cast-function-type"],
            optional=True,
        )
    ]
)
