"""sentiq: sentiment classification with small instruction-tuned LLMs, no training."""

__version__ = "0.1.0"
