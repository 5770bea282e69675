"""``python -m shoprec.endpoint``: the SageMaker container's server, configured by ``SHOPREC_ENDPOINT_*``."""

from __future__ import annotations

import logging

from shoprec.endpoint.server import run_endpoint
from shoprec.endpoint.settings import EndpointSettings

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_endpoint(EndpointSettings())
