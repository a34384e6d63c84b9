"""Every /api/v1 operation, fuzzed from the app's own OpenAPI schema (schemathesis), as a 镇管理员.

Whatever routes exist are covered: the test walks ``/openapi.json``, so a route
added later is fuzzed without touching this file. For each operation a few
valid requests (``positive``) and a few invalid ones (``negative``: wrong
types, missing fields, out-of-range numbers) go to a real server; none may be
a 5xx, and every error must be JSON whose ``detail`` is a Chinese sentence.

Each request carries a fresh API token: the fuzzer may well revoke the token it
was given (``DELETE /api/v1/account/tokens/{id}``) and would then only see 401s.
It runs on the server stack only (PostgreSQL is where bad input bites: NUL
characters, 64-bit numbers in 32-bit columns).
"""

from __future__ import annotations

from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from bot.services import Services
from storage.accounts import create_api_token, create_user
from tests.support.console_seed import PASSWORD, TOWNSHIP, seed_township

EXAMPLES = {GenerationMode.POSITIVE: 6, GenerationMode.NEGATIVE: 4}


@pytest.fixture
def services(make_settings: Any) -> Any:
    from bot.services import build_services

    built = build_services(make_settings(township=TOWNSHIP), migrate=True)
    yield built
    built.close()


def check(case: Any, response: Any) -> None:
    """No 5xx; an error is JSON with a Chinese ``detail`` (schemathesis' Response: headers map to lists)."""
    where = f"{case.method} {case.formatted_path} -> {response.status_code}"
    assert response.status_code < 500, f"{where}: {response.text[:300]}"
    if response.status_code >= 400:
        headers = {k.lower(): v[0] if isinstance(v, list) else v for k, v in response.headers.items()}
        assert headers.get("content-type", "").startswith("application/json"), where
        detail = response.json().get("detail")
        assert isinstance(detail, str) and not detail.isascii(), f"{where}: {detail!r}"


@pytest.mark.parametrize("backend", ["server"], indirect=True)
def test_every_api_operation_survives_fuzzing(services: Services, live_url: str) -> None:
    seed_township(services.db)
    create_user(services.db, "王镇长", PASSWORD, "镇管理员", township=TOWNSHIP)
    raw = requests.get(f"{live_url}/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(raw)
    operations = [result.ok() for result in schema.get_all_operations()]
    operations = [op for op in operations if op.path.startswith("/api/v1/")]
    assert len(operations) >= 10  # the console's own routes at least
    session = requests.Session()
    tried: list[str] = []

    for operation in operations:
        for mode, examples in EXAMPLES.items():
            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                      phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
            def fuzz(case: Any) -> None:
                token = create_api_token(services.db, "王镇长", "schemathesis")
                response = case.call(base_url=live_url, session=session,
                                     headers={"Authorization": f"Bearer {token}"}, timeout=30)
                check(case, response)

            try:
                fuzz()
            except Unsatisfiable:  # nothing to get wrong (no parameters, no body): positive cases did it
                assert mode is GenerationMode.NEGATIVE, operation.path
        tried.append(f"{operation.method.upper()} {operation.path}")
    assert "GET /api/v1/dashboard" in tried and "POST /api/v1/users" in tried
