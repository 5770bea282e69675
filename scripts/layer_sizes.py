#!/usr/bin/env python3
"""Unzipped size of every function and layer that `sam build` produced, against Lambda's limit.

Lambda caps a function's code plus all its layers at 250 MiB unzipped (262,144,000 bytes). This reads
the built template (``.aws-sam/build/template.yaml``) to learn which layers each function uses
(``Globals.Function.Layers`` plus the function's own), measures each artifact folder as the sum of its
files' sizes (what Lambda counts, not disk blocks), prints a table per artifact and per function, and
exits 1 when any function is over the limit (2 when there is no build to measure).

    python scripts/layer_sizes.py [--build-dir .aws-sam/build] [--limit-mib 250]
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

LAMBDA_LIMIT_MIB = 250
MIB = 1024 * 1024
FUNCTION_TYPES = frozenset({"AWS::Serverless::Function", "AWS::Lambda::Function"})
LAYER_TYPES = frozenset({"AWS::Serverless::LayerVersion", "AWS::Lambda::LayerVersion"})


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that reads CloudFormation short-form tags (!Ref X -> {"Ref": "X"})."""


def _cfn_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = suffix if suffix == "Ref" else f"Fn::{suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _cfn_tag)


def load_template(path: Path) -> dict[str, Any]:
    """The template at ``path`` as plain data, short-form tags turned into their long form."""
    with path.open(encoding="utf-8") as f:
        data = yaml.load(f, Loader=_CfnLoader)
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a template")
    return data


def tree_size(root: Path) -> tuple[int, int]:
    """(bytes, files) of the regular files under ``root``; symlinks are counted as the link, not followed."""
    total = files = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            st = os.lstat(os.path.join(dirpath, name))
            total += st.st_size
            files += 1
    return total, files


@dataclass(frozen=True)
class Artifact:
    logical_id: str
    kind: str  # "function" or "layer"
    path: Path
    size: int
    files: int


def _code_dir(build_dir: Path, props: dict[str, Any], key: str) -> Path | None:
    uri = props.get(key)
    if not isinstance(uri, str):
        return None  # inline code, an S3 location or an intrinsic: nothing built here
    path = (build_dir / uri).resolve()
    return path if path.is_dir() else None


def _layer_ids(layers: Any) -> tuple[list[str], list[str]]:
    """(logical ids of layers in this template, other layer references such as ARNs)."""
    local: list[str] = []
    external: list[str] = []
    for layer in layers or []:
        if isinstance(layer, dict) and "Ref" in layer:
            local.append(str(layer["Ref"]))
        else:
            external.append(str(layer))
    return local, external


def measure(build_dir: Path, limit_bytes: int) -> int:
    """Print the tables and return the exit status (0 within the limit, 1 over it)."""
    template = load_template(build_dir / "template.yaml")
    resources: dict[str, Any] = template.get("Resources", {})
    globals_layers = template.get("Globals", {}).get("Function", {}).get("Layers", [])

    artifacts: dict[str, Artifact] = {}
    for logical_id, resource in resources.items():
        rtype = resource.get("Type")
        props = resource.get("Properties", {}) or {}
        if rtype in LAYER_TYPES:
            kind, uri_key = "layer", "ContentUri" if "ContentUri" in props else "Content"
        elif rtype in FUNCTION_TYPES:
            kind, uri_key = "function", "CodeUri" if "CodeUri" in props else "Code"
        else:
            continue
        path = _code_dir(build_dir, props, uri_key)
        if path is None:
            print(f"warning: {logical_id}: no built folder under {build_dir}; not measured", file=sys.stderr)
            continue
        size, files = tree_size(path)
        artifacts[logical_id] = Artifact(logical_id, kind, path, size, files)

    print(f"Unzipped sizes under {build_dir}")
    print(f"  {'artifact':<24} {'kind':<9} {'files':>7} {'MiB':>9}")
    for a in sorted(artifacts.values(), key=lambda a: (a.kind, -a.size)):
        print(f"  {a.logical_id:<24} {a.kind:<9} {a.files:>7} {a.size / MIB:>9.1f}")

    status = 0
    print(f"Per function (code + layers; limit {limit_bytes / MIB:.0f} MiB unzipped)")
    functions = [a for a in artifacts.values() if a.kind == "function"]
    if not functions:
        print("  no built functions found", file=sys.stderr)
        return 1
    for fn in sorted(functions, key=lambda a: a.logical_id):
        props = resources[fn.logical_id].get("Properties", {}) or {}
        own_local, own_external = _layer_ids(props.get("Layers"))
        glob_local, glob_external = _layer_ids(globals_layers)
        layer_ids = list(dict.fromkeys(glob_local + own_local))
        missing = [lid for lid in layer_ids if lid not in artifacts]
        total = fn.size + sum(artifacts[lid].size for lid in layer_ids if lid in artifacts)
        verdict = "ok" if total <= limit_bytes else "OVER THE LIMIT"
        status = status or int(total > limit_bytes)
        print(
            f"  {fn.logical_id:<24} {total / MIB:>9.1f} MiB  {100 * total / limit_bytes:5.1f}%  {verdict}"
            f"  ({' + '.join([fn.logical_id, *layer_ids])})"
        )
        for ref in missing:
            print(f"    warning: layer {ref} was not built here; not counted", file=sys.stderr)
        for ref in glob_external + own_external:
            print(f"    warning: external layer {ref} not counted", file=sys.stderr)
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", type=Path, default=Path(".aws-sam/build"))
    parser.add_argument("--limit-mib", type=float, default=LAMBDA_LIMIT_MIB)
    args = parser.parse_args(argv)
    if not (args.build_dir / "template.yaml").is_file():
        print(f"no built template at {args.build_dir}/template.yaml: run `sam build` first", file=sys.stderr)
        return 2
    return measure(args.build_dir, int(args.limit_mib * MIB))


if __name__ == "__main__":
    sys.exit(main())
