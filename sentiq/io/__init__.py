"""Data in and out: labelled data sets, text sources, prediction sinks, run folders, atomic files, the hub."""
