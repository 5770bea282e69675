"""Copy a bundle written before the search index existed into a new bundle with the prebuilt BM25 index
(``pipeline.search``), as ``shoprec train`` now writes it; everything else is copied unchanged.

Usage::

    .venv/bin/python bench/search/add_search_index.py ARTIFACTS OUT

The copy has a new model version (its files differ). For measuring the first search and cold start with
and without the index on the same models (docs/search.md); a retrained bundle has the index anyway.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from shoprec.artifacts import BundleWriter, load_bundle
from shoprec.catalog import CatalogIndex
from shoprec.search.build import write_search_index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("artifacts", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    bundle = load_bundle(args.artifacts)
    manifest = bundle.manifest
    if bundle.pipeline.search is not None:
        raise SystemExit(f"{args.artifacts}: the bundle has a search index already")
    with BundleWriter(args.out) as writer:
        for entry in manifest.files:
            writer.add_file(entry.name, bundle.file(entry.name))
        spec = write_search_index(CatalogIndex.from_bundle(bundle), writer)
        if spec is None:
            raise SystemExit(f"{args.artifacts}: the bundle's catalogue has no text to index")
        written = writer.commit(
            dataset=manifest.dataset,
            hyperparameters=manifest.hyperparameters,
            metrics=manifest.metrics,
            pipeline=manifest.pipeline.model_copy(update={"search": spec}),
            extra=manifest.extra,
        )
    print(f"{args.out}: {written.short_version}, {len(spec.files())} index files")


if __name__ == "__main__":
    main()
