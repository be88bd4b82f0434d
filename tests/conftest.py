import os

# Tests run on CPU; keep XLA from grabbing every core for intra-op threads it cannot use well.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
