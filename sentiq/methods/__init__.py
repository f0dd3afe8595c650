"""The classification methods over the engine: prompts as data, calibration, label scoring, generation
and voting, and the classifier that binds one method to one engine."""
