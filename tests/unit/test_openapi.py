"""The OpenAPI document is valid OpenAPI 3.1, and a client generated from it is one a person
could have written: each enum one named class (not one per field, nor a `...Type0` class per
optional field), the members of each kind of problem typed, times as datetimes, and a body
that a route needs required.

The client is generated once per module by openapi-python-client (a few seconds) and read
with `ast`; it is also imported, so it is valid Python."""
from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from openapi_spec_validator import validate

from calsvc.web import openapi
from calsvc.web.routes import ROUTES

GENERATOR = Path(sys.executable).with_name("openapi-python-client")
PACKAGE = "calsvc_client"
# The generator speaks JSON only; that it skips the msgpack alternative of each body is
# the one thing it may warn about.
TOLERATED_WARNINGS = {"Unsupported content type application/msgpack"}
# Imports every module of the generated package; prints those that fail.
IMPORT_ALL = f"""
import importlib, pkgutil, {PACKAGE}
for module in pkgutil.walk_packages({PACKAGE}.__path__, "{PACKAGE}."):
    try:
        importlib.import_module(module.name)
    except Exception as exc:
        print(f"{{module.name}}: {{type(exc).__name__}}: {{exc}}")
"""
# The generator's own bug (0.29): a required body of two media types (login: JSON, or the
# OAuth2 form) is annotated `... | Unset` without importing Unset. Nothing else may fail.
GENERATOR_BUGS = {f"{PACKAGE}.api.auth.login": "NameError: name 'Unset' is not defined"}
# Routes that take an empty body (every member optional, and nothing given is fine).
OPTIONAL_BODIES = {"logout", "update_event", "patch_event", "change_occurrence", "rollback"}
# Members that hold a time: a client must get a datetime, not a string.
TIME_MEMBER = re.compile(r"(^|_)(time|at|start|end|until)$|^(exdates|rdates)$")


@pytest.fixture(scope="module")
def document() -> dict:
    return openapi.build(ROUTES)


class Client:
    """What the generated package defines: its enums (class -> values), the members of its
    models (class -> member -> annotation) and the source of each module."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sources = {p.relative_to(root).as_posix(): p.read_text() for p in root.rglob("*.py")}
        self.enums: dict[str, set[str]] = {}
        self.members: dict[str, dict[str, str]] = {}
        for path, source in self.sources.items():
            if not path.startswith("models/"):
                continue
            for node in ast.parse(source).body:
                if not isinstance(node, ast.ClassDef):
                    continue
                if any(ast.unparse(b).endswith("Enum") for b in node.bases):
                    self.enums[node.name] = {
                        s.value.value for s in node.body
                        if isinstance(s, ast.Assign) and isinstance(s.value, ast.Constant)
                    }
                else:
                    self.members[node.name] = {
                        s.target.id: ast.unparse(s.annotation) for s in node.body
                        if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)
                    }

    def operation(self, name: str) -> str:
        [source] = [s for p, s in self.sources.items() if p.startswith("api/") and p.endswith(f"/{name}.py")]
        return source

    def parameters(self, name: str) -> dict[str, str]:
        """The arguments of the operation's `sync_detailed`, with their annotations."""
        tree = ast.parse(self.operation(name))
        [function] = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "sync_detailed"]
        arguments = function.args.args + function.args.kwonlyargs
        return {a.arg: ast.unparse(a.annotation) for a in arguments if a.annotation is not None}

    def answers(self, name: str, status: int) -> set[str]:
        """The models the operation reads an answer of that status as."""
        return set(re.findall(rf"response_{status}\w* = (\w+)\.from_dict", self.operation(name)))


@pytest.fixture(scope="module")
def client(document, tmp_path_factory) -> Client:
    root = tmp_path_factory.mktemp("generated")
    source, config = root / "openapi.json", root / "config.json"
    source.write_text(json.dumps(document))
    config.write_text(json.dumps({"post_hooks": []}))
    run = subprocess.run(
        [str(GENERATOR), "generate", "--path", str(source), "--output-path", str(root / PACKAGE),
         "--meta", "none", "--config", str(config)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    # Each warning is "WARNING parsing <operation> within <tag>.", then what it is about.
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    warnings = {lines[i + 1] for i, line in enumerate(lines) if line.startswith("WARNING")}
    assert warnings <= TOLERATED_WARNINGS, output
    imported = subprocess.run([sys.executable, "-c", IMPORT_ALL], cwd=root, capture_output=True, text=True,
                              timeout=60, check=False)
    failed = dict(line.split(": ", 1) for line in imported.stdout.splitlines())
    assert imported.returncode == 0 and failed.items() <= GENERATOR_BUGS.items(), imported.stdout + imported.stderr
    return Client(root / PACKAGE)


def test_the_document_is_valid_openapi(document):
    validate(document)  # raises, naming the first thing that is not


def test_every_enum_is_a_named_component(document):
    """An enum inline in a property makes a generator invent a class per property; a named
    component is one class, referenced everywhere. (A single value is a `const`.)"""
    inline = []

    def walk(node, where: str, top: bool) -> None:
        if isinstance(node, dict):
            if "enum" in node and not top:
                inline.append(where)
            for key, value in node.items():
                walk(value, f"{where}/{key}", False)
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}/{i}", False)

    walk(document["paths"], "paths", False)
    for name, schema in document["components"]["schemas"].items():
        walk(schema, name, True)
    assert inline == []


def test_no_numbered_classes(client):
    numbered = [name for name in [*client.enums, *client.members] if re.search(r"Type\d+$", name)]
    assert numbered == []


def test_each_enum_is_one_class(client):
    by_values = defaultdict(list)
    for name, values in client.enums.items():
        by_values[frozenset(values)].append(name)
    assert {tuple(names) for names in by_values.values() if len(names) > 1} == set()
    assert by_values[frozenset({"reject", "allow", "shift"})] == ["OnConflict"]
    assert by_values[frozenset({"owner", "editor", "viewer"})] == ["Role"]


def test_fields_and_parameters_use_the_named_enums(client):
    on_conflict = [(model, members["on_conflict"]) for model, members in client.members.items()
                   if "on_conflict" in members]
    for name in ("create_event", "create_batch", "update_event", "patch_event", "rollback", "run_transaction",
                 "change_occurrence"):
        on_conflict.append((name, client.parameters(name)["on_conflict"]))
    assert len(on_conflict) >= 13
    for where, annotation in on_conflict:
        named = set(annotation.split(" | ")) - {"None", "Unset"}
        assert named in ({"OnConflict"}, {"OccurrenceOnConflict"}), (where, annotation)
    assert client.members["Event"]["my_role"] == "Role"
    assert client.members["PermissionOut"]["role"] == "Role"
    assert client.members["RoleIn"]["role"] == "Role"
    assert "Role" in client.parameters("list_events")["role"]


def test_problem_members_are_typed(client):
    members = client.members
    assert members["SchedulingConflictProblem"]["conflicts"] == "list[ConflictItem]"
    assert members["EditConflictProblem"]["fields"] == "list[str]"
    assert members["PreconditionFailedProblem"]["current"] == "Event"
    assert members["BatchItemProblem"]["index"] == "int"
    assert members["TransactionOperationProblem"]["index"] == "int"
    assert members["NotReadyProblem"]["database"] == "bool"
    # and each operation reads its problems as the kinds it answers
    assert client.answers("create_event", 409) == {"SchedulingConflictProblem"}
    assert client.answers("patch_event", 409) == {"SchedulingConflictProblem", "EditConflictProblem"}
    assert client.answers("update_event", 412) == {"PreconditionFailedProblem"}
    assert client.answers("create_batch", 409) == {"BatchItemProblem"}
    assert client.answers("run_transaction", 412) == {"TransactionOperationProblem"}
    assert client.answers("get_event", 404) == {"Problem"}


def test_times_are_datetimes(client):
    untyped = [f"{model}.{name}: {annotation}" for model, members in client.members.items()
               for name, annotation in members.items()
               if TIME_MEMBER.search(name) and "datetime.datetime" not in annotation]
    assert untyped == []
    assert client.members["Snapshot"]["start_time"] == "datetime.datetime"


def test_a_body_the_route_needs_is_required(document, client):
    for route in ROUTES:
        if route.body is not None:
            path = re.sub(r"{([^}:]+)(?::[^}]*)?}", r"{\1}", route.path)
            required = document["paths"][path][route.method.lower()]["requestBody"]["required"]
            assert required == (route.name not in OPTIONAL_BODIES), route.name
    assert client.parameters("share")["body"] == "ShareIn"
    assert client.parameters("logout")["body"] == "LogoutRequest | Unset"
