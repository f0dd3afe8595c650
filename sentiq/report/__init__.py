"""The self-contained HTML report of saved runs, drawn from what `compare` returns."""
