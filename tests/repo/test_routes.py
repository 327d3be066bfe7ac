"""The OpenAPI document describes the route table: the same paths, methods,
operations and scopes as `pulumi/routes.json`, which `items_aws::routes`
writes and checks (issue 24: one route table)."""

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
METHODS = {"get", "post", "put", "patch", "delete", "head"}


def camel(kebab: str) -> str:
    head, *rest = kebab.split("-")
    return head + "".join(word.title() for word in rest)


def test_openapi_paths_are_the_route_table():
    table = json.loads((ROOT / "pulumi" / "routes.json").read_text())
    spec = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text())
    documented = {
        (method.upper(), path): operation
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    }
    routes = {(r["method"], r["resource"]): r for r in table["routes"]}
    assert set(documented) == set(routes)
    for key, route in routes.items():
        operation = documented[key]
        assert operation["operationId"] == camel(route["operation"]), key
        scopes = [scope for requirement in operation["security"] for scope in requirement.get("cognito", [])]
        assert scopes == [route["scope"]], key


def test_the_route_table_file_is_valid():
    table = json.loads((ROOT / "pulumi" / "routes.json").read_text())
    for route in table["routes"]:
        assert re.fullmatch(r"(/[a-z]+|/\{[a-z]+\})+", route["resource"]), route
