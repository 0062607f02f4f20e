"""Write the JSON schema of one CRD version as test data: ``python extract.py CRD.yaml KIND SOURCE``.

The CRD files are large (the experimental HTTPRoute CRD is 530 kB, two versions with every field
documented); the tests need only the served ``v1`` schema, so this keeps ``openAPIV3Schema`` of
``v1`` without the ``description`` texts, plus where it came from. CEL rules
(``x-kubernetes-validations``) are kept but not evaluated by ``jsonschema``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml


def strip_descriptions(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: strip_descriptions(value) for key, value in node.items() if key != "description"}
    if isinstance(node, list):
        return [strip_descriptions(value) for value in node]
    return node


def main(crd_path: str, kind: str, source: str) -> None:
    crd = yaml.safe_load(Path(crd_path).read_text(encoding="utf-8"))
    version = next(entry for entry in crd["spec"]["versions"] if entry["name"] == "v1")
    annotations = crd["metadata"].get("annotations") or {}
    record = {
        "source": source,
        "bundle_version": annotations.get("gateway.networking.k8s.io/bundle-version")
        or annotations.get("operator.prometheus.io/version"),
        "channel": annotations.get("gateway.networking.k8s.io/channel"),
        "group": crd["spec"]["group"],
        "kind": kind,
        "version": "v1",
        "openAPIV3Schema": strip_descriptions(version["schema"]["openAPIV3Schema"]),
    }
    out = Path(__file__).with_name(f"{kind.lower()}-v1.json")
    out.write_text(json.dumps(record, indent=1, sort_keys=True), encoding="utf-8")


if __name__ == "__main__":
    main(*sys.argv[1:4])
