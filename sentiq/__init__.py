"""sentiq: sentiment classification with small instruction-tuned LLMs, no training."""

import os

__version__ = "0.1.0"

# On CPUs, oneDNN (bfloat16 matmuls) keeps a compiled kernel and packed weights for every input shape
# it has seen, 1,024 of each by default; texts of every length make new shapes, and resident memory grew
# from 0.5 to 2.3 GB over 3,000 reviews with a tiny model. 16 hold what one forward pass reuses (0.98 GB,
# flat). Set before torch loads; a user's own setting wins.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "16")
os.environ.setdefault("LRU_CACHE_CAPACITY", "16")
