"""Errors of the operator tooling."""

from __future__ import annotations

from shoprec.errors import ShopRecError


class DeploymentError(ShopRecError):
    """A training, publishing or deployment step cannot go ahead; the message says why and what to do."""
