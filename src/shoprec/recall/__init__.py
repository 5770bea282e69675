"""Recall channels: cheap candidate generators over the whole catalogue (numpy only at serving time)."""

from shoprec.recall.itemcf import ItemCFNeighbours, fit_itemcf
from shoprec.recall.popularity import PopularityRecall, fit_popularity

__all__ = ["ItemCFNeighbours", "PopularityRecall", "fit_itemcf", "fit_popularity"]
