"""Searches on a tuning split of train reviews (never the evaluation texts, nor the demonstrations):
temperature x top-k for the sampling method (`sampling`), and prompt x label words x calibration x ending
(and small ensembles) for the methods that score labels and, read off the same pass, for those that
generate (`prompts`). `--tuned` then applies a model's choices (`choices`)."""
