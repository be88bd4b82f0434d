import atexit
import os
import shutil
import tempfile

# Tests run on CPU; keep XLA from grabbing every core for intra-op threads it cannot use well.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

# The tests' programs are small and compiled once each: XLA's backend without its optimization
# passes compiles them in about half the time (the results agree to float rounding). The
# examples' subprocesses inherit it; a test that sets XLA_FLAGS itself replaces it.
_FAST_COMPILE = "--xla_backend_optimization_level=0"
if _FAST_COMPILE not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_FAST_COMPILE}".strip()

# One XLA compilation cache for the run, shared by its workers (they inherit the variable)
# and removed at the end: tests that build the same computation anew compile it once.
if "L2ORL_TEST_XLA_CACHE" not in os.environ:
    os.environ["L2ORL_TEST_XLA_CACHE"] = tempfile.mkdtemp(prefix="l2orl-xla-")
    atexit.register(shutil.rmtree, os.environ["L2ORL_TEST_XLA_CACHE"], ignore_errors=True)

import jax  # noqa: E402

jax.config.update("jax_compilation_cache_dir", os.environ["L2ORL_TEST_XLA_CACHE"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
