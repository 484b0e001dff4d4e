"""Case ids: real shapes with slashes can be opened and reviewed; ids that cannot be, or that look like
another id, are refused with a 422 naming the field."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.settings import Settings
from tests.keys import ADMIN

CASE = {"title": "小区燃气管道漏气", "body": "小区5栋楼道燃气味很重，已经两天了。"}


@pytest.fixture
def client(demo_bundle_dir: Path, db_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(model_uri=str(demo_bundle_dir), database_url=db_url)), headers=ADMIN) as c:
        yield c


@pytest.mark.parametrize("case_id", ["2026/00123", "A/B/C", "2026/00123/reviews", "编号#1?x=1", "100%"])
def test_an_id_with_slashes_or_url_characters_is_triaged_opened_and_reviewed(client: TestClient,
                                                                            case_id: str) -> None:
    answer = client.post("/v1/triage", json={"case_id": case_id, **CASE})
    assert answer.status_code == 200, answer.text
    path = quote(case_id, safe="/")
    detail = client.get(f"/v1/cases/{path}")
    assert detail.status_code == 200, detail.text
    assert detail.json()["case_id"] == case_id
    review = client.post(f"/v1/cases/{path}/reviews", json={"action": "confirm"})
    assert review.status_code == 201, review.text
    (stored,) = client.get(f"/v1/cases/{path}").json()["reviews"]
    assert stored["id"] == review.json()["id"] and stored["case_id"] == case_id
    page = client.get(f"/review/cases/{path}")
    assert page.status_code == 200 and f'action="/review/cases/{path}/reviews"' in page.text


@pytest.mark.parametrize(
    "case_id", [".", "..", " A1", "A1 ", "A\u202e1", "A\u200b1", "\u2066A1", "A\ufeff1", "A\n1", "A\u20281"]
)
def test_an_id_that_cannot_be_opened_or_looks_like_another_is_a_422(client: TestClient, case_id: str) -> None:
    answer = client.post("/v1/triage", json={"case_id": case_id, **CASE})
    assert answer.status_code == 422, answer.text
    (error,) = answer.json()["detail"]
    assert error["loc"][-1] == "case_id"
