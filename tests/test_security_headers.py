"""Every answer carries the security headers (issue 19, item 10): HTML that can run no script
and be framed by nobody, JSON that no browser sniffs into something else."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from starlette.testclient import TestClient

from tests.conftest import ADMIN, bearer

EXPECTED = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


@pytest.mark.parametrize(
    ("method", "path", "token"),
    [
        ("GET", "/docs", None),
        ("GET", "/openapi.json", None),
        ("GET", "/healthz", None),
        ("GET", "/api/v1/orgs", ADMIN),
        ("GET", "/api/v1/orgs", "tly_unknown"),  # an error answer too
        ("GET", "/api/statistics/", ADMIN),  # a vendor API's 400
        ("GET", "/nowhere", None),  # a route that does not exist
    ],
)
def test_every_answer_has_the_security_headers(
    client: TestClient, method: str, path: str, token: str | None
) -> None:
    response = client.request(method, path, headers=bearer(token) if token else {})
    for name, value in EXPECTED.items():
        assert response.headers[name] == value
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "script-src" not in policy  # nothing may run a script


def test_the_docs_page_style_is_allowed_by_its_hash_and_nothing_else(client: TestClient) -> None:
    response = client.get("/docs")
    styles = re.findall(r"<style>(.*?)</style>", response.text, re.S)
    assert len(styles) == 1
    digest = base64.b64encode(hashlib.sha256(styles[0].encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in response.headers["content-security-policy"]
    assert "<script" not in response.text
    assert "unsafe-inline" not in response.headers["content-security-policy"]
