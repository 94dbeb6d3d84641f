from ..distill.conftest import one_cpu_thread  # noqa: F401  (autouse: tiny models run fastest on one thread)
