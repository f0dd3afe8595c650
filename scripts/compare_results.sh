#!/usr/bin/env bash
# Re-make the committed rankings (results/*/comparison.csv and comparison.png) from the runs beside them;
# tests/test_docs.py checks that each committed comparison.csv ranks the runs its folder holds.
set -euo pipefail
cd "$(dirname "$0")/.."
for folder in results/*/; do
  [ -f "$folder/comparison.csv" ] || continue
  sentiq compare --results-dir "$folder" --write >/dev/null
  echo "wrote ${folder}comparison.csv and comparison.png"
done
