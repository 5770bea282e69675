"""Offline training (needs the ``train`` extra: torch, onnx). Never imported by the serving path."""
