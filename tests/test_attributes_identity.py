"""Wrong item: nearest SKU bank by global embedding, reported with the SKU it resembles."""

from __future__ import annotations

import pytest
import torch

from detectors.anomaly.model import AnomalyModel, ModelConfig
from detectors.attributes.stage import AttributesStage
from detectors.localize import localize
from pipeline.catalog import Catalog
from pipeline.stages import StageContext
from pipeline.types import Frame, ItemCapture
from pipeline.views import OTHER_LOOK_KEY
from tunnel_sim import render_item
from tunnel_sim.catalog import catalog_records

RECORDS = {r.sku: r for r in catalog_records()}
SKUS = ("BOOK-NOVEL-0001", "TEE-BASIC-NAVY-M", "PHONE-CASE-P15-RED")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.set_num_threads(1)
    model = AnomalyModel(ModelConfig(student_steps=20, max_patches=512))
    for k, sku in enumerate(SKUS):
        images = [render_item(RECORDS[sku], seed=100 * k + i, cameras=("top",)).images["top"] for i in range(6)]
        model.fit(images, name=sku)
    out = tmp_path_factory.mktemp("ident")
    model.save(out / "anomaly")
    return out


def _view(camera: str = "top"):
    import numpy as np

    from pipeline.views import LocalizedView

    return LocalizedView(camera, np.zeros((8, 8, 3), np.uint8), np.ones((8, 8), bool), [0, 0, 8, 8])


def _capture(sku: str, seed: int, actual: str | None = None) -> ItemCapture:
    defects = ("wrong_item",) if actual else ()
    item = render_item(RECORDS[sku], defects=defects, seed=seed, cameras=("top",), actual_sku=RECORDS.get(actual or ""))
    return ItemCapture(item_id=f"w{seed}", sku=sku, frames=[Frame.from_array("top", item.images["top"])])


@pytest.mark.slow
def test_wrong_item_names_the_nearest_sku(model_dir) -> None:
    stage = AttributesStage(model_dir=model_dir, check_labels=False, check_colour=False)
    ctx = StageContext(catalog=Catalog(skus=RECORDS))
    findings = stage(_capture("BOOK-NOVEL-0001", 900, actual="PHONE-CASE-P15-RED"), ctx)
    assert [f.kind for f in findings] == ["wrong_item"]
    assert findings[0].evidence[0].data["nearest_sku"] == "PHONE-CASE-P15-RED"
    assert findings[0].probability > 0.5
    assert ctx.shared[OTHER_LOOK_KEY].startswith("wrong_item: looks like PHONE-CASE-P15-RED")
    ctx = StageContext(catalog=Catalog(skus=RECORDS))
    assert stage(_capture("BOOK-NOVEL-0001", 901), ctx) == []
    assert OTHER_LOOK_KEY not in ctx.shared
    read = stage.identity_read(
        RECORDS["TEE-BASIC-NAVY-M"], [localize(_capture("TEE-BASIC-NAVY-M", 902).frames[0].image, "top")]
    )
    assert not read.closer_to_other and read.own_sku == "TEE-BASIC-NAVY-M"


@pytest.mark.slow
def test_wrong_item_check_reuses_the_anomaly_stage_embeddings(model_dir, monkeypatch) -> None:
    """After the anomaly stage, the wrong-item check reads its embeddings instead of running the
    backbone again, and names the same SKU as when it embeds the views itself."""
    from detectors.anomaly.stage import AnomalyStage
    from detectors.attributes.identity import IdentityChecker
    from detectors.localize import LocalizeStage
    from pipeline.views import EMBEDDINGS_KEY

    capture = _capture("BOOK-NOVEL-0001", 903, actual="PHONE-CASE-P15-RED")
    alone = AttributesStage(model_dir=model_dir, check_labels=False, check_colour=False)
    expected = alone(capture, StageContext(catalog=Catalog(skus=RECORDS)))
    ctx = StageContext(catalog=Catalog(skus=RECORDS), model_dir=model_dir)
    LocalizeStage()(capture, ctx)
    AnomalyStage(model_dir=model_dir)(capture, ctx)
    assert EMBEDDINGS_KEY in ctx.shared

    def no_backbone(self, views):
        raise AssertionError("embedded the views again")

    monkeypatch.setattr(IdentityChecker, "embed", no_backbone)
    shared = AttributesStage(model_dir=model_dir, check_labels=False, check_colour=False)(capture, ctx)
    assert [f.kind for f in shared] == [f.kind for f in expected] == ["wrong_item"]
    assert shared[0].evidence[0].data["nearest_sku"] == expected[0].evidence[0].data["nearest_sku"]
    assert shared[0].score == pytest.approx(expected[0].score, abs=1e-5)


def test_published_embeddings_serve_only_the_same_views_and_model() -> None:
    import numpy as np

    from pipeline.views import LocalizedView, ViewEmbeddings

    def view(camera: str) -> LocalizedView:
        return LocalizedView(
            camera=camera, crop=np.zeros((4, 4, 3), np.uint8), mask=np.ones((4, 4), bool), box=[0, 0, 4, 4]
        )

    top, left = view("top"), view("left")
    published = ViewEmbeddings("anomaly-1-abc", {"top": (top, np.ones(3)), "left": (left, np.zeros(3))})
    assert published.lookup([left, top], "anomaly-1-abc").tolist() == [[0, 0, 0], [1, 1, 1]]
    assert published.lookup([top], "anomaly-1-other") is None  # another model's embeddings
    assert published.lookup([view("top")], "anomaly-1-abc") is None  # a view localised elsewhere
    assert published.lookup([view("right")], "anomaly-1-abc") is None


@pytest.mark.parametrize(
    ("a", "b", "siblings"),
    [
        ("SHEET-SET-TWIN", "SHEET-SET-KING", True),
        ("TEE-BASIC-NAVY-M", "TEE-BASIC-NAVY-XL", True),
        ("SNEAKER-RUN-BLU-42", "SNEAKER-RUN-BLU-44", True),
        ("TEE-BASIC-NAVY-M", "TEE-BASIC-WHITE-M", False),  # colour is seen, not read off a label
        ("TEE-BASIC-NAVY-M", "TEE-BASIC-NAVY-M", False),
        ("SNEAKER-RUN-BLU-42", "SNEAKER-CANVAS-WHT-40", False),
        ("BOOK-NOVEL-0001", "PHONE-CASE-P15-RED", False),
    ],
)
def test_variant_siblings(a: str, b: str, siblings: bool) -> None:
    from detectors.attributes.stage import variant_siblings

    assert variant_siblings(RECORDS[a], RECORDS[b]) is siblings


@pytest.mark.parametrize(
    ("nearest", "expected"),
    [
        ("PHONE-CASE-P15-RED", "divert"),
        ("SHEET-SET-KING", "review"),  # a size sibling looks alike: the label check decides the swap
    ],
)
def test_wrong_item_naming_a_variant_sibling_is_a_review(monkeypatch, nearest: str, expected: str) -> None:

    from detectors.attributes.identity import IdentityRead
    from detectors.attributes.stage import REVIEW_CEILING_P

    stage = AttributesStage(check_labels=False, check_colour=False)
    read = IdentityRead("SHEET-SET-TWIN", 0.5, nearest, 0.3, 0.2, own_ceiling=0.1)
    monkeypatch.setattr(stage, "identity_read", lambda *a, **k: read)
    (finding,) = stage.identity_findings(RECORDS["SHEET-SET-TWIN"], [_view()], None, RECORDS)
    assert finding.kind == "wrong_item"
    assert finding.evidence[0].data["variant_sibling"] is (expected == "review")
    if expected == "divert":
        assert finding.probability > 0.99
    else:
        assert finding.probability == REVIEW_CEILING_P
    (no_catalog,) = stage.identity_findings(RECORDS["SHEET-SET-TWIN"], [_view()], None)
    assert no_catalog.probability > 0.99  # without the catalog nothing is known of siblings


@pytest.mark.parametrize(
    ("nearest_distance", "nearest_ceiling", "camouflaged", "called"),
    [
        (0.3, 0.1, False, True),  # clear views: nearer another SKU and unlike its own is enough
        (0.3, 0.1, True, False),  # in a tote of its colour the crop may be cut: not enough
        (0.3, 0.35, True, True),  # ... unless it looks like a normal item of the other SKU
        (0.3, 0.3, True, True),
    ],
)
def test_camouflaged_wrong_item_needs_a_likeness_to_the_other_sku(
    monkeypatch, nearest_distance: float, nearest_ceiling: float, camouflaged: bool, called: bool
) -> None:
    from detectors.attributes.identity import IdentityRead
    from detectors.attributes.stage import REVIEW_CEILING_P

    stage = AttributesStage(check_labels=False, check_colour=False)
    read = IdentityRead(
        "FOOD-CEREAL-DE-01", 0.7, "BOOK-NOVEL-0001", nearest_distance, 0.7 - nearest_distance, 0.5, nearest_ceiling
    )
    assert read.like_nearest is (nearest_distance <= nearest_ceiling)
    monkeypatch.setattr(stage, "identity_read", lambda *a, **k: read)
    found = stage.identity_findings(RECORDS["FOOD-CEREAL-DE-01"], [_view()], None, RECORDS, camouflaged=camouflaged)
    assert [f.kind for f in found] == (["wrong_item"] if called else [])
    if found:
        assert found[0].evidence[0].data["camouflaged"] is camouflaged
        assert ("tote of its own colour" in found[0].message) is camouflaged
        # a clear call is a divert; one made through a camouflaged crop is a review
        assert (found[0].probability <= REVIEW_CEILING_P) is camouflaged


@pytest.mark.parametrize(
    ("camouflaged_cameras", "read_cameras", "flag"),
    [
        (set(), ["top", "left"], False),
        ({"top"}, ["left"], False),  # the clear view alone is read, as before
        ({"top", "left"}, ["top", "left"], True),  # every view camouflaged: all read, likeness needed
    ],
)
def test_identity_reads_clear_views_or_all_of_a_camouflaged_item(
    monkeypatch, camouflaged_cameras: set[str], read_cameras: list[str], flag: bool
) -> None:
    import numpy as np

    from pipeline.views import VIEWS_KEY

    class Known:
        version = "anomaly-test"

        def knows(self, sku: str) -> bool:
            return True

    stage = AttributesStage(check_labels=False, check_colour=False)
    stage.identity = Known()
    calls = []
    monkeypatch.setattr(stage, "_camouflaged", lambda record, view, frame: view.camera in camouflaged_cameras)
    monkeypatch.setattr(
        stage,
        "identity_findings",
        lambda record, views, emb, catalog, camouflaged: calls.append(([v.camera for v in views], camouflaged)) or [],
    )
    frames = {c: np.full((8, 8, 3), 90, np.uint8) for c in ("top", "left")}
    capture = ItemCapture(
        item_id="c1", sku="FOOD-CEREAL-DE-01", frames=[Frame.from_array(c, f) for c, f in frames.items()]
    )
    ctx = StageContext(catalog=Catalog(skus=RECORDS))
    ctx.shared[VIEWS_KEY] = {c: _view(c) for c in frames}
    stage(capture, ctx)
    assert calls == [(read_cameras, flag)]
