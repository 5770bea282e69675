"""Datasets: loading the supported on-disk formats and the leave-one-out split."""

from shoprec.data.loaders import DATA_FORMATS, load_dataset, resolve_dataset_path
from shoprec.data.model import Dataset, ItemMeta
from shoprec.data.split import Split, leave_one_out

__all__ = [
    "DATA_FORMATS",
    "Dataset",
    "ItemMeta",
    "Split",
    "leave_one_out",
    "load_dataset",
    "resolve_dataset_path",
]
