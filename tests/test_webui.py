"""The reviewer UI against a real uvicorn server: plain HTTP checks, then headless Chromium end to end.

The store comes from `inspect_path` over a tiny hand-rendered dataset with a stand-in stage
(red top view = stain), so every page shows real verdicts, findings, lots and quarantines.
"""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from PIL import Image

from pipeline.catalog import Catalog
from pipeline.inspect import inspect_path
from pipeline.lots import QUARANTINE_EVENT
from pipeline.stages import STAGES, StageContext, register_stage
from pipeline.store import Store
from pipeline.types import CatalogRecord, Evidence, Finding, Frame, ItemCapture, Verdict
from pipeline.webui import create_ui

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"


class RedIsStain:
    """Flags items whose top view is mostly red as a stain, with a box on the top camera."""

    name, version = "red", "1"

    def __call__(self, capture: ItemCapture, ctx: StageContext) -> list[Finding]:
        image = capture.images()["top"]
        red = float((image[..., 0] > 150).mean())
        if red < 0.5:
            return []
        ev = Evidence(camera="top", box=[4.0, 4.0, 40.0, 30.0], data={"read_as": "turned level (-25°)"})
        return [Finding(stage=self.name, kind="stain", score=red, probability=0.97, evidence=[ev])]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Inspect 10 items (5 red in lot LBAD, 5 blue in LGOOD), each seen by two cameras."""
    base = tmp_path_factory.mktemp("webui")
    ds = base / "ds"
    (ds / "images").mkdir(parents=True)
    Catalog(skus={"S1": CatalogRecord(sku="S1", title="Box", category="food_box")}).save(ds / "catalog.json")
    (ds / "dataset.json").write_text(json.dumps({"today": "2026-11-22"}))
    lines = []
    for i in range(10):
        item, bad = f"I{i:03d}", i < 5
        (ds / "images" / item).mkdir()
        Image.new("RGB", (96, 64), (220, 20, 20) if bad else (20, 20, 220)).save(ds / "images" / item / "top.png")
        Image.new("RGB", (96, 64), (200, 200, 200)).save(ds / "images" / item / "side.png")
        frames = [{"camera": c, "uri": f"images/{item}/{c}.png"} for c in ("top", "side")]
        lines.append(
            {"item_id": item, "sku": "S1", "lot": "LBAD" if bad else "LGOOD", "seller": "acme"}
            | {
                "frames": frames,
                "split": "test",
            }
        )
    (ds / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    register_stage("red", f"{__name__}:RedIsStain")
    try:
        inspect_path(ds, base / "results", stages=["red"], progress=False)
    finally:
        STAGES.pop("red", None)
    complaint = {"item_id": "I001", "root_cause": "damaged_before_shipping", "confidence": 0.9}
    complaint |= {"summary": "The tunnel photos show the stain.", "complaint_text": "arrived stained"}
    (base / "results" / "investigations.jsonl").write_text(json.dumps(complaint) + "\n")
    return base / "results"


@pytest.fixture(scope="module")
def server(results: Path) -> Iterator[str]:
    """The UI on a free loopback port, served by uvicorn in a thread."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_ui(results / "store.db", results=results)
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("UI server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


def test_pages_render_and_queue_is_sorted(server: str) -> None:
    with httpx.Client(base_url=server) as client:
        queue = client.get("/")
        assert queue.status_code == 200
        assert all(f"I00{i}" in queue.text for i in range(5)) and "I009" not in queue.text
        assert client.get("/?action=divert").status_code == 200
        assert client.get("/?action=pass").status_code == 422
        item = client.get("/items/I000")
        assert item.status_code == 200
        assert "stain" in item.text and item.text.count('class="view"') == 2
        assert "(read turned level (-25°))" in item.text  # how the evidence was read, in words
        plain = client.get("/items/I000", params={"overlay": "false"})
        assert plain.status_code == 200 and plain.text.count('class="view"') == 2
        assert _images(item.text) != _images(plain.text)  # the box is drawn only with the overlay
        report = client.get("/items/I001")
        assert "damaged_before_shipping" in report.text and "arrived stained" in report.text
        lots = client.get("/lots")
        assert lots.status_code == 200 and "LBAD" in lots.text and "quarantine" in lots.text
        patterns = client.get("/patterns", params={"by": "lot"})
        assert patterns.status_code == 200 and "LBAD" in patterns.text


def _images(html: str) -> list[str]:
    return [part.split('"', 1)[0] for part in html.split('src="data:image/png')[1:]]


def test_unknown_and_unsafe_ids_are_refused(server: str) -> None:
    with httpx.Client(base_url=server) as client:
        assert client.get("/items/NOPE").status_code == 404
        for path in ("/items/..%2F..%2Fetc%2Fpasswd", "/items/a..b", "/items/%2Fetc%2Fpasswd"):
            assert client.get(path).status_code == 404, path
        assert client.post("/items/NOPE/label", data={"decision": "accept"}).status_code == 404
        assert client.post("/items/I001/label", data={"decision": "delete"}).status_code == 422
        bad = client.post("/items/I001/label", data={"decision": "relabel", "label": "<script>"})
        assert bad.status_code == 422
        cross = client.post("/items/I001/label", data={"decision": "accept"}, headers={"origin": "http://evil.example"})
        assert cross.status_code == 403


def test_frame_outside_data_roots_is_not_read(results: Path, tmp_path: Path) -> None:
    """A stored frame uri that escapes the data roots is listed as unavailable, never decoded."""
    outside = tmp_path / "secret.png"
    Image.new("RGB", (8, 8), (1, 2, 3)).save(outside)
    (tmp_path / "store").mkdir()
    db = tmp_path / "store" / "store.db"
    shutil.copy(results / "store.db", db)
    store = Store(db)
    frames = [Frame(camera="top", uri=str(outside)), Frame(camera="side", uri="../secret.png")]
    store.enqueue(ItemCapture(item_id="X1", sku="S1", frames=frames))
    store.lease(limit=100)
    store.complete(Verdict(item_id="X1", sku="S1", action="review", reasons=["test"]))
    images = tmp_path / "images"
    images.mkdir()
    with TestClient(create_ui(db, dataset=images)) as client:
        page = client.get("/items/X1")
    assert page.status_code == 200
    assert page.text.count("image unavailable") == 2 and 'class="view"' not in page.text


def test_label_post_writes_labels_and_redirects(server: str, results: Path) -> None:
    with httpx.Client(base_url=server) as client:
        res = client.post("/items/I002/label", data={"decision": "reject", "reviewer": "ana"})
        assert res.status_code == 303 and res.headers["location"] == "/items/I002?flash=rejected"
        res = client.post("/items/I003/label", data={"decision": "relabel", "label": "crushed_corner"})
        assert res.status_code == 303
        page = client.get(res.headers["location"])
        assert "true defect type is stored" in page.text
    store = Store(results / "store.db")
    assert [(r["label"], r["decision"], r["reviewer"]) for r in store.labels("I002")] == [("stain", "reject", "ana")]
    assert [(r["label"], r["decision"]) for r in store.labels("I003")] == [
        ("stain", "reject"),
        ("crushed_corner", "confirm"),
    ]


def test_a_reviewer_confirming_a_date_mismatch_quarantines_the_lot_at_once(server: str, results: Path) -> None:
    store = Store(results / "store.db")
    assert "LGOOD" not in {e.payload["lot"] for e in store.events(QUARANTINE_EVENT)}
    with httpx.Client(base_url=server) as client:
        res = client.post("/items/I008/label", data={"decision": "relabel", "label": "date_mismatch"})
        assert res.status_code == 303
    (event,) = [e.payload for e in store.events(QUARANTINE_EVENT) if e.payload["lot"] == "LGOOD"]
    assert event["triggered_by"] == "I008" and sorted(event["items_in_building"]) == [f"I00{i}" for i in range(5, 10)]


def test_token_guards_every_page(results: Path) -> None:
    app = create_ui(results / "store.db", results=results, token="s3cret")
    with TestClient(app) as client:
        assert client.get("/").status_code == 401
        assert client.get("/", headers={"authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/", headers={"authorization": "Bearer s3cret"}).status_code == 200
        assert client.get("/lots", auth=("ana", "s3cret")).status_code == 200


@pytest.mark.browser
def test_review_flow_in_chromium(server: str, results: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not installed (`make setup` installs Debian's chromium)")
    from playwright.sync_api import expect, sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(server + "/")
            expect(page.locator("#queue tbody tr")).to_have_count(5)
            page.screenshot(path=SCREENSHOTS / "queue.png", full_page=True)

            page.click("a.item-link >> text=I000")
            expect(page.locator("h1")).to_contain_text("I000")
            expect(page.locator("img.view")).to_have_count(2)
            with_overlay = page.locator("img.view").first.get_attribute("src")
            page.screenshot(path=SCREENSHOTS / "item_overlay.png", full_page=True)
            page.click("#overlay-toggle")
            expect(page.locator(".views")).to_have_attribute("data-overlay", "off")
            assert page.locator("img.view").first.get_attribute("src") != with_overlay
            page.screenshot(path=SCREENSHOTS / "item_plain.png", full_page=True)

            page.fill("#reviewer", "ana")
            page.click("#accept")
            expect(page.locator("#flash")).to_contain_text("Accepted")
            expect(page.locator("#labels")).to_contain_text("confirm")
            page.screenshot(path=SCREENSHOTS / "item_accepted.png", full_page=True)

            page.click("text=Lots")
            expect(page.locator("#lots")).to_contain_text("LBAD")
            # The quarantine event stays even when later reviewer overrides bring the lot's count down.
            expect(page.locator("#lots")).to_contain_text("item(s) in building")
            page.screenshot(path=SCREENSHOTS / "lots.png", full_page=True)

            page.click("text=Damage patterns")
            expect(page.locator("#patterns")).to_contain_text("acme")
            page.screenshot(path=SCREENSHOTS / "patterns.png", full_page=True)
        finally:
            browser.close()
    rows = Store(results / "store.db").labels("I000")
    assert [(r["label"], r["decision"], r["reviewer"]) for r in rows] == [("stain", "confirm", "ana")]


@pytest.mark.parametrize(
    ("kinds", "offered"),
    [
        (["anomaly", "possible_defect", "label_ok"], ["anomaly"]),
        (["unreadable", "expiry_ok"], ["unreadable"]),
        (["possible_defect", "label_ok", "expiry_ok"], []),
    ],
)
def test_a_reviewer_is_never_asked_to_confirm_an_informational_finding(kinds, offered) -> None:
    """ "Accept" confirms what the line acted on; a sign below the line's threshold or an
    "expiry_ok" is not something a reviewer confirms."""
    from pipeline.webui import defect_kinds

    findings = [Finding(stage="s", kind=k, score=0.0, probability=0.9 if k == "anomaly" else 0.0) for k in kinds]
    assert defect_kinds(findings) == offered


def test_the_reports_findings_behind_verdicts_leave_out_informational_ones(tmp_path) -> None:
    from pipeline.report import ResultsFolder, build_context
    from pipeline.types import Action

    findings = [
        Finding(stage="anomaly", kind="anomaly", score=5.0, probability=0.9),
        Finding(stage="supervised", kind="possible_defect", score=1.0, probability=0.0),
        Finding(stage="ocr_expiry", kind="expiry_ok", score=0.0, probability=0.0),
    ]
    verdict = Verdict(item_id="R-1", sku="SKU-1", action=Action.DIVERT, findings=findings)
    folder = ResultsFolder(root=tmp_path, run={}, verdicts=[verdict], captures={}, truths={}, store=None)
    assert dict(build_context(folder)["kinds"]) == {"anomaly": 1}
