"""The graph spec's JSON schema is a published contract: changes must be deliberate."""

from __future__ import annotations

import json

import shoal
from tests.conftest import REPO

SNAPSHOT = REPO / "docs" / "graph-schema.json"


def test_schema_matches_the_snapshot():
    current = shoal.GraphSpec.model_json_schema(by_alias=True)
    stored = json.loads(SNAPSHOT.read_text())
    assert current == stored, (
        "GraphSpec's JSON schema changed. If intended, regenerate docs/graph-schema.json with: "
        "python -c 'import json, shoal; print(json.dumps(shoal.GraphSpec.model_json_schema("
        "by_alias=True), indent=2, sort_keys=True))' > docs/graph-schema.json"
    )


def test_schema_names_the_version_field():
    schema = shoal.GraphSpec.model_json_schema(by_alias=True)
    assert schema["properties"]["shoal"]["const"] == 1
