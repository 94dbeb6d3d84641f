from ..distill.conftest import one_cpu_thread, semanticseg  # noqa: F401  (the GPU scripts' tiny fixtures)
