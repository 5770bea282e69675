"""The ranking endpoint: an HTTP app serving the bundle's ONNX ranker (the SageMaker inference container).

The JSON contract is documented in ``docs/ranking-endpoint.md``; the container image in
``sagemaker/inference/``.
"""

from shoprec.endpoint.app import create_endpoint_app

__all__ = ["create_endpoint_app"]
