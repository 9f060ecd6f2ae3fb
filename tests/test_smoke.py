"""The service starts on a fresh file and answers health, OpenAPI and docs."""

from __future__ import annotations

from starlette.testclient import TestClient


def test_healthz_needs_no_token(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_openapi_lists_every_route(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    assert document["openapi"].startswith("3.")
    assert "put" in document["paths"]["/api/v1/orgs/{org}/members/{id}"]
    assert "post" in document["paths"]["/api/v1/orgs/{org}/events"]


def test_docs_page_is_html(client: TestClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert "text/html" in response.headers["content-type"]
    assert "/api/v1/orgs/{org}/events" in response.text
