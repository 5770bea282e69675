"""The REST API v1 (FastAPI): ``create_app`` in :mod:`shoprec.api.app`, routers under ``api.routes``.

Kept import-free so that ``shoprec.api.schemas`` (shared with the SQS ingest handler) does not pull in
FastAPI's application machinery.
"""
