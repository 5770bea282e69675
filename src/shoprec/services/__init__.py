"""Application services: one per use case; handlers and routes call exactly one of them."""
