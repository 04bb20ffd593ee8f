"""The lab spec: the model read from lab.yaml, its validation, and the expectations computed from it."""
