"""Property-based fuzzing of the edge API from its own OpenAPI spec (schemathesis).

Every generated request, valid or not, must get a documented status code and a body that
matches the documented schema, and never a 5xx. The SSE stream is left out: it never ends.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from pipeline.service import ServiceConfig, create_app
from pipeline.types import ITEM_ID_PATTERN
from tests.test_service import AUTH, FAKE_STAGES, NO_AUDIT, TOKEN, image_bytes, write_catalog

_DIR = Path(tempfile.mkdtemp(prefix="tunnelpi-fuzz-"))
APP = create_app(
    ServiceConfig(
        db=_DIR / "edge.db",
        catalog=write_catalog(_DIR / "catalog.json"),
        token=TOKEN,
        stages=FAKE_STAGES,
        policy=NO_AUDIT,
        max_upload_bytes=256 * 1024,
    )
)
CLIENT = TestClient(APP)  # no lifespan: requests only queue, nothing is inspected
schema = schemathesis.openapi.from_asgi("/openapi.json", APP).exclude(path="/v1/verdicts/stream")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_spec(case) -> None:
    case.call_and_validate(headers=AUTH, checks=CHECKS)


JPEG = image_bytes()
item_ids = st.one_of(st.from_regex(ITEM_ID_PATTERN, fullmatch=True), st.text(max_size=40))
cameras = st.one_of(st.sampled_from(["top", "side", "front"]), st.text(max_size=12))
payloads = st.one_of(
    st.just(JPEG),
    st.binary(max_size=512),
    st.integers(1, len(JPEG) - 1).map(lambda n: JPEG[:n]),
    st.binary(min_size=1, max_size=64).map(lambda junk: JPEG[:200] + junk + JPEG[264:]),
)


@given(item_id=item_ids, camera=cameras, data=payloads, sku=st.text(max_size=70), extra=st.booleans())
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_structured_uploads_never_crash_and_never_escape(item_id, camera, data, sku, extra) -> None:
    """Well-formed multipart with hostile ids, names and image bytes: only documented answers."""
    meta = {"item_id": item_id, "sku": sku, "frames": [camera]}
    if extra:
        meta["unexpected"] = 1
    files = [("images", (f"{camera}.jpg", data, "image/jpeg"))]
    resp = CLIENT.post("/v1/captures", data={"capture": json.dumps(meta)}, files=files, headers=AUTH)
    assert resp.status_code in (200, 202, 413, 422, 429), resp.text
    assert isinstance(resp.json()["detail" if resp.status_code >= 400 else "item_id"], str)
    images = (_DIR / "images").resolve()
    assert all(p.resolve().is_relative_to(images) for p in images.rglob("*"))
