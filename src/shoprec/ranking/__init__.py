"""Ranking of recall candidates by the sequence model (numpy + onnxruntime only)."""
