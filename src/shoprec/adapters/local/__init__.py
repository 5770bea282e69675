"""Single-machine adapters: sqlite user state, in-process cache, bundles on disk, in-process ONNX ranker."""
