#!/usr/bin/python3
"""Validates rendered YAML files against an official JSON Schema with the jsonschema library.

usage: check_schema.py SCHEMA.json PATH...   (a PATH may be a directory: every *.yml below it)
Exits non-zero, naming the file and the failing location, if any document does not validate.
"""
import json
import pathlib
import sys

import jsonschema
import yaml


def documents(paths):
    for p in map(pathlib.Path, paths):
        if p.is_dir():
            yield from sorted(p.rglob("*.yml"))
        else:
            yield p


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    schema = json.loads(pathlib.Path(sys.argv[1]).read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)
    checked = 0
    failures = 0
    for doc_path in documents(sys.argv[2:]):
        doc = yaml.safe_load(doc_path.read_text())
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
        for e in errors:
            where = "/".join(str(x) for x in e.path) or "(root)"
            print(f"{doc_path}: {where}: {e.message}", file=sys.stderr)
        failures += len(errors)
        checked += 1
    if checked == 0:
        print("no documents to check", file=sys.stderr)
        return 1
    print(f"{checked} document(s) checked against {sys.argv[1]}: {failures} error(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
