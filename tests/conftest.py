import atexit
import os
import shutil
import tempfile

# Tests run on CPU; keep XLA from grabbing every core for intra-op threads it cannot use well.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

# One XLA compilation cache for the run, shared by its workers (they inherit the variable)
# and removed at the end: tests that build the same computation anew compile it once.
if "L2ORL_TEST_XLA_CACHE" not in os.environ:
    os.environ["L2ORL_TEST_XLA_CACHE"] = tempfile.mkdtemp(prefix="l2orl-xla-")
    atexit.register(shutil.rmtree, os.environ["L2ORL_TEST_XLA_CACHE"], ignore_errors=True)

import jax

jax.config.update("jax_compilation_cache_dir", os.environ["L2ORL_TEST_XLA_CACHE"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
