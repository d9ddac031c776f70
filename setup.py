"""Build the small native core of the runtime (dispatch loop, fault handler)."""
from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "runtime._native",
            sources=["runtime/native/aotrt.c"],
            extra_compile_args=["-O2", "-std=gnu11", "-Wall"],
        )
    ]
)
