"""Where predictions are made: in this process (`local`) or on a Ray cluster (`ray`, imported only there).
Both answer `describe()`, `predict(...)` and `peak_memory_bytes()` (the `Predictor` protocol)."""
