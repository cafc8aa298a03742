"""docs/openapi.yaml with its x-common-responses spelled out in every operation.

The document lists, in info.description and once in x-common-responses, the
answers any operation may give besides its own (a refused token, a request the
router refuses before any handler runs, a body of the wrong type or size, an
Idempotency-Key reused or in progress). A tool that checks each answer against
the operation's own list (schemathesis) needs them there: this adds each one
the operation does not list itself, and prints the result as JSON.
Usage: python3 expand.py openapi.yaml > openapi.json
"""
import json
import sys

import yaml

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def main(path):
    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    common = doc.get("x-common-responses")
    if not isinstance(common, dict):
        sys.exit(f"{path}: no x-common-responses")
    global_security = doc.get("security", [])
    params = doc.get("components", {}).get("parameters", {})

    def takes_idempotency_key(op, shared):
        for p in list(shared) + list(op.get("parameters", [])):
            if "$ref" in p:
                p = params.get(p["$ref"].rsplit("/", 1)[-1], {})
            if p.get("in") == "header" and p.get("name", "").lower() == "idempotency-key":
                return True
        return False

    for route, item in doc["paths"].items():
        shared = item.get("parameters", [])
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            groups = ["every"]
            if op.get("security", global_security):
                groups.append("secured")
            if "requestBody" in op:
                groups.append("body")
            if takes_idempotency_key(op, shared):
                groups.append("idempotent")
            if route.startswith("/registry/"):
                groups.append("registry")  # last: Confluent's shape wins there
            add = {}
            for g in groups:
                add.update(common.get(g, {}))
            responses = op.setdefault("responses", {})
            for status, response in add.items():
                responses.setdefault(str(status), response)
    json.dump(doc, sys.stdout, indent=1, default=str)


if __name__ == "__main__":
    main(sys.argv[1])
