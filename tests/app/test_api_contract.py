"""The API against its own OpenAPI document (``/api/v1/openapi.json``), by schemathesis: requests
generated from each operation's documented parameters and bodies, valid ones and invalid ones,
sent with each role's token to the real app over a real database. Whatever comes in, the answer
is never a 5xx, an invalid request is refused with a 4xx, and every answer (errors included) has
the documented content type and matches the documented schema.

It found that the document described flask-smorest's error shape (``{"code": 404, "status":
...}``) rather than the one every error has (``{"error": {"code", "message", ...}}``), and that
a multipart part without a name was a 500. Deterministic (``derandomize``): CI runs the same
requests each time."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis import checks

from registry.services import Actor, Role
from tests.conftest import batch_data

EXAMPLES = 8  # per operation, mode and role
ROLES = ("authority", "producer", "inspector")  # the partner's reads are the authority's
CHECKS = {
    GenerationMode.POSITIVE: [checks.not_a_server_error, checks.status_code_conformance,
                              checks.content_type_conformance, checks.response_schema_conformance],
    GenerationMode.NEGATIVE: [checks.not_a_server_error, checks.negative_data_rejection,
                              checks.content_type_conformance, checks.response_schema_conformance],
}


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_every_operation_answers_as_its_document_says(app, world, registry, session, mode):
    registry.register_batch(Actor(role=Role.PRODUCER, producer_id=world.producer_id), batch_data())
    session.commit()  # a batch for the paths that name one; SQLite: nothing held
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    failures: dict[tuple[str, str, str], str] = {}
    sent: list[int] = []

    def sender(operation, role: str):  # noqa: ANN001, ANN202
        @given(operation.as_strategy(mode))
        @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
                  suppress_health_check=list(HealthCheck))
        def send(case) -> None:  # noqa: ANN001
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {world.tokens[role]}"}
            response = case.call()
            sent.append(response.status_code)
            try:
                case.validate_response(response, checks=CHECKS[mode])
            except checks.FailureGroup as failure:  # one per check that failed
                failures.setdefault((case.method, case.path, role), f"{response.status_code}: {failure}"[:600])
        return send

    for result in schema.get_all_operations():
        operation = result.ok()
        for role in ROLES:
            try:
                sender(operation, role)()
            except Unsatisfiable:  # no invalid request can be written for it (no parameters, no body)
                assert mode is GenerationMode.NEGATIVE, operation.label
    assert len(sent) > 300 and len(set(sent)) > 3  # every operation was reached, with answers of all kinds
    assert not failures, "\n\n".join(f"{method} {path} as {role}: {why}"
                                      for (method, path, role), why in sorted(failures.items()))
