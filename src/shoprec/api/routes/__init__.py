"""Routers of the REST API v1, one module per resource, included into one app by ``create_app``."""
