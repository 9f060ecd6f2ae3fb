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


def test_openapi_documents_each_familys_errors(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    events = paths["/api/v1/orgs/{org}/events"]["post"]["responses"]
    assert sorted(events) == ["200", "400", "401", "403", "404", "408", "413", "415", "503"]
    problem = events["400"]["content"]["application/problem+json"]["schema"]
    assert problem["required"] == ["type", "title", "status", "detail"]
    usage = paths["/oapi/v1/lingma/organizations/{organizationId}/departmentUsage"]["get"]
    assert sorted(usage["responses"]) == ["200", "400", "401", "403", "404"]
    lingma = usage["responses"]["404"]["content"]["application/json"]["schema"]
    assert lingma["required"] == ["errorCode", "errorMessage", "requestId"]
    apps = paths["/api/v1/app/usage_stats"]["post"]
    assert "429" in apps["responses"]
    assert apps["requestBody"]["required"] is False
    revoke = paths["/api/v1/orgs/{org}/tokens/{id}"]["delete"]["responses"]["204"]
    assert "content" not in revoke


def test_openapi_states_the_parameters_constraints(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    usage = paths["/oapi/v1/lingma/organizations/{organizationId}/departmentUsage"]["get"]
    schemas = {p["name"]: p["schema"] for p in usage["parameters"]}
    assert schemas["startTime"]["pattern"] == "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
    assert schemas["perPage"]["maximum"] == 100
    stats = {p["name"]: p["schema"] for p in paths["/api/statistics/"]["get"]["parameters"]}
    assert stats["stats_type"]["enum"] == ["users", "developers", "workspaces"]
    assert stats["org_domain"]["minLength"] == 1


def test_options_names_every_method_of_the_path(client: TestClient) -> None:
    response = client.options("/api/v1/orgs/acme/members/m1")
    assert response.status_code == 204
    assert response.headers["allow"] == "GET, HEAD, OPTIONS, PUT"
    wrong = client.delete("/api/v1/orgs/acme/members/m1")
    assert wrong.status_code == 405
    assert set(wrong.headers["allow"].split(", ")) == {"GET", "HEAD", "OPTIONS", "PUT"}
