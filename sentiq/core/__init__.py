"""The inference core: models (resolve, load, device and dtype), the engine (prefix cache, forward passes),
batching and decoding. It knows nothing of labels, data sets or files."""

import os

# Set here, before the core's modules load torch, rather than on `import sentiq`: on CPUs, oneDNN
# (bfloat16 matmuls) keeps a compiled kernel and packed weights for every input shape it has seen, 1,024
# of each by default, and texts of every length make new shapes, so resident memory grows without bound
# over a long input (docs/large-inputs.md). 16 hold what one forward pass reuses. A user's own setting wins.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "16")
os.environ.setdefault("LRU_CACHE_CAPACITY", "16")
