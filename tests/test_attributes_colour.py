"""Colour check: CIEDE2000, white balance, lighting and tote robustness, packaging variants."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.attributes.colour import ColourConfig, camouflaged, ciede2000, measure, to_lab, white_balance_gains
from detectors.attributes.profile import (
    ALWAYS_SHOWN,
    OWN_TOTE_FRACTION,
    RELIABLE_SHARE,
    SHARE_FLOOR,
    VANISHED_SHARE,
    WHOLE_FRACTION,
    AttributeProfile,
    ColourTrust,
    ProfileReadings,
    located_views,
    reference_reading,
    threshold_from_shares,
)
from detectors.attributes.stage import REVIEW_CEILING_P, AttributesStage
from detectors.localize import localize
from pipeline.catalog import Catalog
from pipeline.stages import StageContext
from pipeline.types import Frame, ItemCapture
from pipeline.views import OTHER_LOOK_KEY, LocalizedView
from tunnel_sim import render_item
from tunnel_sim.catalog import catalog_records

RECORDS = {r.sku: r for r in catalog_records()}
FCS = ("FC-BER1", "FC-MAD2", "FC-LYS1")


def test_ciede2000_reference_pairs() -> None:
    """Pairs from Sharma, Wu and Dalal (2005), table 1."""
    pairs = [
        ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
        ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
        ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ]
    for a, b, want in pairs:
        assert ciede2000(np.array(a), np.array(b)) == pytest.approx(want, abs=1e-3)


def test_white_balance_from_neutral_belt_only() -> None:
    frame = np.full((120, 160, 3), (60, 60, 60), np.uint8)
    tinted = (frame * np.array([1.1, 1.0, 0.9])).astype(np.uint8)
    gains = white_balance_gains(tinted, [40, 30, 120, 90])
    assert (tinted[0, 0] * gains) == pytest.approx([60.0, 60.0, 60.0], abs=2.0)
    blue_tote = np.full((120, 160, 3), (36, 84, 160), np.uint8)
    assert white_balance_gains(blue_tote, [40, 30, 120, 90]) == pytest.approx([1.0, 1.0, 1.0])


def _views(sku: str, seed: int, defects=(), benign=(), fc="FC-BER1", tint=None):
    item = render_item(RECORDS[sku], defects=defects, benign=benign, seed=seed, fc=fc, cameras=("top", "right"))
    out = []
    for cam, img in item.images.items():
        if tint is not None:
            img = np.clip(img * np.asarray(tint), 0, 255).astype(np.uint8)
        out.append((localize(img, cam), img))
    return out


@pytest.mark.parametrize("sku", ["TEE-BASIC-NAVY-M", "PHONE-CASE-P15-RED", "SHEET-SET-KING"])
def test_normal_items_match_on_any_tote_and_light(sku: str) -> None:
    rgb = RECORDS[sku].colour_rgb
    for seed, fc in enumerate(FCS):
        assert measure(_views(sku, seed, fc=fc), rgb).matches, (sku, fc)
        assert measure(_views(sku, seed, fc=fc, benign=("other_fc_tote",)), rgb).matches
    assert measure(_views(sku, 7, tint=(1.12, 1.0, 0.88)), rgb).matches  # warm light


@pytest.mark.parametrize("sku", ["TEE-BASIC-NAVY-M", "PHONE-CASE-P15-RED", "SHEET-SET-KING"])
def test_wrong_colour_is_flagged(sku: str) -> None:
    rgb = RECORDS[sku].colour_rgb
    # not FC-MAD2: a wrong colour equal to the tote's own blue cannot be separated by localize
    for seed, fc in enumerate(("FC-BER1", "FC-LYS1", "FC-SEA8")):
        read = measure(_views(sku, seed, defects=("wrong_colour",), fc=fc), rgb)
        assert not read.matches, (sku, fc, read)


def test_profile_threshold_handles_shoebox_and_no_shoebox() -> None:
    """Sneakers ship in a shoebox (a small colour swatch) or without (the shoe itself): both normal."""
    sku = "SNEAKER-RUN-BLU-42"
    rgb = RECORDS[sku].colour_rgb
    normal = [measure(_views(sku, s), rgb, min_share=0.0).share for s in range(4)]
    threshold = threshold_from_shares(normal)
    assert measure(_views(sku, 11, benign=("packaging_variant",)), rgb, min_share=threshold).matches
    assert measure(_views(sku, 12), rgb, min_share=threshold).matches
    assert not measure(_views(sku, 13, defects=("wrong_colour",)), rgb, min_share=threshold).matches


def _white_shirt_findings(folder, threshold: float, n_items: int) -> list:
    """The attributes stage's findings on a white shirt shipped as a navy SKU whose learned
    colour threshold is `threshold`."""
    sku = "TEE-BASIC-NAVY-M"
    AttributeProfile(min_share={sku: threshold}, n_items={sku: n_items}).save(folder / "attributes")
    stage = AttributesStage(model_dir=folder, check_labels=False)
    item = render_item(RECORDS[sku], defects=("wrong_colour",), seed=2, cameras=("top",))
    capture = ItemCapture(item_id="c1", sku=sku, frames=[Frame.from_array("top", item.images["top"])])
    return stage(capture, StageContext(catalog=Catalog(skus=RECORDS)))


@pytest.mark.parametrize(("lost", "expected_p"), [(None, "divert"), ("lens cap", "review"), ("corrupt", "review")])
def test_a_colour_measured_without_a_camera_whose_frame_is_unusable_is_a_review(tmp_path, lost, expected_p) -> None:
    """The white shirt under a navy SKU, with a second camera whose frame is a lens cap or a
    corrupt file: the colour measured on the other view alone may not divert."""
    sku = "TEE-BASIC-NAVY-M"
    AttributeProfile(min_share={sku: 0.3}, n_items={sku: 4}).save(tmp_path / "attributes")
    stage = AttributesStage(model_dir=tmp_path, check_labels=False)
    item = render_item(RECORDS[sku], defects=("wrong_colour",), seed=2, cameras=("top",))
    frames = [Frame.from_array("top", item.images["top"])]
    if lost == "lens cap":
        frames.append(Frame.from_array("left", np.full_like(item.images["top"], 30)))
    elif lost == "corrupt":
        (tmp_path / "left.jpg").write_bytes(b"\xff\xd8 not a jpeg")
        frames.append(Frame(camera="left", uri=str(tmp_path / "left.jpg")))
    capture = ItemCapture(item_id="c1", sku=sku, frames=frames)
    ctx = StageContext(catalog=Catalog(skus=RECORDS))
    (finding,) = [f for f in stage(capture, ctx) if f.kind == "wrong_colour"]
    if expected_p == "divert":
        assert finding.probability > 0.5 and finding.evidence[0].data["unusable_cameras"] == []
        # the later stages hear that the item is not its SKU's look
        assert ctx.shared[OTHER_LOOK_KEY].startswith("wrong_colour: only ")
    else:
        assert finding.probability == REVIEW_CEILING_P and "left, whose frame was unusable" in finding.message
        assert finding.evidence[0].data["unusable_cameras"] == ["left"]
        assert OTHER_LOOK_KEY not in ctx.shared  # a review: the item may be its SKU after all


def test_stage_reports_wrong_colour_with_evidence(tmp_path) -> None:
    findings = _white_shirt_findings(tmp_path, 0.3, 4)
    assert [f.kind for f in findings] == ["wrong_colour"]
    f = findings[0]
    assert f.probability > 0.5 and f.evidence[0].camera == "top"
    assert f.evidence[0].data["expected"] == "navy" and f.evidence[0].data["min_share"] == 0.3


@pytest.mark.parametrize(
    ("threshold", "trust"),
    [
        (None, ColourTrust.FULL),  # no learned threshold: the check's default applies
        (SHARE_FLOOR, ColourTrust.NONE),  # references barely show the colour
        (SHARE_FLOOR * 1.5, ColourTrust.REVIEW),
        (RELIABLE_SHARE * 0.99, ColourTrust.REVIEW),
        (RELIABLE_SHARE, ColourTrust.FULL),
        (0.4, ColourTrust.FULL),
    ],
)
def test_colour_trust_follows_the_learned_threshold(threshold, trust) -> None:
    sku = "BOTTLE-JUICE-ES-1L"
    profile = AttributeProfile(min_share={} if threshold is None else {sku: threshold}, n_items={})
    assert profile.colour_trust(sku) is trust


@pytest.mark.parametrize(
    ("threshold", "expected"),
    [(0.3, "divert"), (RELIABLE_SHARE * 0.9, "review"), (SHARE_FLOOR, None)],
)
def test_wrong_colour_finding_is_only_as_strong_as_the_skus_threshold(tmp_path, threshold, expected) -> None:
    """The same white shirt under a navy SKU: a divert where the references show navy well, a
    review where they show it on little of the item, nothing where they barely show it."""
    findings = [f for f in _white_shirt_findings(tmp_path, threshold, 12) if f.kind == "wrong_colour"]
    if expected is None:
        assert findings == []
        return
    (finding,) = findings
    if expected == "divert":
        assert finding.probability > 0.5 and finding.evidence[0].data["threshold_trust"] == "full"
    else:
        assert finding.probability == REVIEW_CEILING_P
        assert finding.evidence[0].data["threshold_trust"] == "review" and "review" in finding.message


@pytest.mark.parametrize(
    ("lowest", "share", "vanished"),
    [
        (0.02, 0.0, True),  # every reference showed the colour; the item shows none of it
        (0.02, VANISHED_SHARE, True),
        (0.02, VANISHED_SHARE * 1.5, False),  # some of it still shows: the threshold decides
        (ALWAYS_SHOWN, 0.0, True),
        (ALWAYS_SHOWN * 0.9, 0.0, False),  # a reference barely showed it: it can vanish on a good item
        (None, 0.0, False),  # a profile without the least share (written before it was kept)
    ],
)
def test_colour_vanished_needs_a_colour_every_reference_showed(lowest, share, vanished) -> None:
    sku = "SNEAKER-RUN-BLU-42"
    profile = AttributeProfile(min_share={sku: 0.015}, lowest_share={} if lowest is None else {sku: lowest})
    assert profile.colour_vanished(sku, share) is vanished


def test_profile_from_shares_keeps_threshold_and_least_share(tmp_path) -> None:
    profile = AttributeProfile.from_shares({"A": [0.03, 0.2, 0.05, 0.25], "B": []})
    assert set(profile.min_share) == {"A"} and profile.lowest_share == {"A": 0.03} and profile.n_items == {"A": 4}
    loaded = AttributeProfile.load(profile.save(tmp_path).parent)
    assert loaded.lowest_share == {"A": 0.03} and loaded.min_share == profile.min_share
    old = tmp_path / "old"
    old.mkdir()
    (old / "profile.json").write_text('{"format": 1, "min_share": {"A": 0.015}, "n_items": {"A": 4}}')
    assert AttributeProfile.load(old).lowest_share == {} and AttributeProfile.load(old).whole_area == {}


def _view_of_area(camera: str, pixels: int, scale: float = 1.0) -> LocalizedView:
    """A view whose mask covers `pixels` crop pixels, each `scale` frame pixels wide."""
    mask = np.zeros((100, 100), bool)
    mask.flat[:pixels] = True
    affine = np.array([[scale, 0.0, 5.0], [0.0, scale, 7.0]])
    return LocalizedView(camera, np.zeros((100, 100, 3), np.uint8), mask, [0, 0, 100, 100], affine)


@pytest.mark.parametrize(
    ("camera", "pixels", "scale", "uncut"),
    [
        ("top", 1000, 1.0, True),
        ("top", round(1000 * WHOLE_FRACTION), 1.0, True),
        ("top", round(1000 * WHOLE_FRACTION) - 20, 1.0, False),  # cut down to what differs from the tote
        ("top", 250, 2.0, True),  # a crop at half the frame's resolution: areas are in frame pixels
        ("left", 5000, 1.0, False),  # no reference area for this camera
    ],
)
def test_uncut_compares_the_item_area_with_the_references_low_end(camera, pixels, scale, uncut) -> None:
    profile = AttributeProfile.from_shares({"A": [0.5] * 10}, {"A": {"top": [1000.0] * 9 + [5000.0]}})
    assert profile.whole_area == {"A": {"top": 1000.0}}
    assert profile.uncut("A", _view_of_area(camera, pixels, scale)) is uncut
    assert not profile.uncut("B", _view_of_area(camera, pixels, scale))


def test_profile_keeps_whole_areas_through_a_save(tmp_path) -> None:
    profile = AttributeProfile.from_shares({"A": [0.4, 0.5]}, {"A": {"top": [900.0, 1100.0], "left": []}})
    assert set(profile.whole_area["A"]) == {"top"}
    assert AttributeProfile.load(profile.save(tmp_path).parent).whole_area == profile.whole_area


@pytest.mark.parametrize(
    ("lowest", "share", "gone"),
    [
        (0.5, 0.5 * OWN_TOTE_FRACTION, True),
        (0.5, 0.5 * OWN_TOTE_FRACTION + 0.01, False),  # a good item tinted by its tote
        (None, 0.0, False),
    ],
)
def test_gone_in_own_tote_is_a_fraction_of_the_least_reference_share(lowest, share, gone) -> None:
    profile = AttributeProfile(lowest_share={} if lowest is None else {"A": lowest})
    assert profile.gone_in_own_tote("A", share) is gone


def test_profile_learns_a_sku_in_its_own_colour_only_when_no_reference_shows_it_elsewhere(tmp_path) -> None:
    """A black phone case on the dark grey home belt: every view is ringed by a colour within the
    tolerance of black, so it is learned from those views as they are; one reference on another
    belt is enough to learn from clear views only."""
    sku = "PHONE-CASE-P15-BLK"
    home = ProfileReadings()
    for seed in range(4):
        home.add(sku, located_views(render_item(RECORDS[sku], seed=500 + seed, fc="FC-BER1").images), [30, 30, 32])
    profile = home.profile()
    assert profile.learned_in_own_colour == {sku} and profile.min_share[sku] > 0.05
    assert set(profile.whole_area[sku]) == {"top", "left", "right"}
    assert AttributeProfile.load(profile.save(tmp_path).parent).learned_in_own_colour == {sku}
    yellow = render_item(RECORDS[sku], seed=600, fc="FC-LYS1")
    home.add(sku, located_views(yellow.images), [30, 30, 32])
    mixed = home.profile()
    assert mixed.learned_in_own_colour == set() and mixed.n_items[sku] == 1


@pytest.mark.parametrize(("defects", "flagged"), [((), False), (("wrong_colour",), True)])
def test_a_black_item_on_a_dark_belt_is_read_as_its_references_were(tmp_path, defects, flagged) -> None:
    sku = "PHONE-CASE-P15-BLK"
    readings = ProfileReadings()
    for seed in range(6):
        item = render_item(RECORDS[sku], seed=500 + seed, fc="FC-BER1")
        readings.add(sku, located_views(item.images), RECORDS[sku].colour_rgb)
    readings.profile().save(tmp_path / "attributes")
    stage = AttributesStage(model_dir=tmp_path, check_labels=False)
    item = render_item(RECORDS[sku], defects=defects, seed=7000, fc="FC-BER1")
    frames = [Frame.from_array(cam, img) for cam, img in item.images.items()]
    findings = stage(ItemCapture(item_id="k1", sku=sku, frames=frames), StageContext(catalog=Catalog(skus=RECORDS)))
    colour = [f for f in findings if f.kind == "wrong_colour"]
    assert bool(colour) is flagged
    if flagged:
        assert colour[0].probability > 0.5 and "as every reference was" in colour[0].message


def _cereal_profile(tmp_path) -> None:
    """The yellow cereal's profile from references on grey belts and a grey tote."""
    sku = "FOOD-CEREAL-DE-01"
    shares, areas = [], {}
    for seed, fc in enumerate(("FC-BER1", "FC-SEA8", "FC-DTM2") * 2):
        item = render_item(RECORDS[sku], seed=900 + seed, fc=fc, cameras=("top", "left"))
        share, view_areas = reference_reading(located_views(item.images), RECORDS[sku].colour_rgb)
        shares.append(share)
        for camera, area in view_areas.items():
            areas.setdefault(camera, []).append(area)
    AttributeProfile.from_shares({sku: shares}, {sku: areas}).save(tmp_path / "attributes")


@pytest.mark.parametrize(
    ("defects", "seed", "flagged"),
    [
        (("wrong_item",), 50426, True),  # a red biscuit box sent for the yellow cereal box
        ((), 50426, False),
        ((), 50422, False),
    ],
)
def test_an_item_found_whole_in_a_tote_of_its_colour_is_read(tmp_path, defects, seed, flagged) -> None:
    """In the yellow tote, a yellow cereal box is cut down to its print (no colour verdict), but a
    red box sent in its place is cut out whole, and its missing yellow is a wrong colour."""
    _cereal_profile(tmp_path)
    sku = "FOOD-CEREAL-DE-01"
    actual = RECORDS["FOOD-COOKIES-FR-01"] if defects else None
    item = render_item(RECORDS[sku], defects=defects, seed=seed, fc="FC-LYS1", actual_sku=actual)
    assert all(camouflaged(img, localize(img, cam).box, RECORDS[sku].colour_rgb) for cam, img in item.images.items())
    frames = [Frame.from_array(cam, img) for cam, img in item.images.items()]
    stage = AttributesStage(model_dir=tmp_path, check_labels=False)
    findings = stage(ItemCapture(item_id="c1", sku=sku, frames=frames), StageContext(catalog=Catalog(skus=RECORDS)))
    colour = [f for f in findings if f.kind == "wrong_colour"]
    assert bool(colour) is flagged
    if flagged:
        assert colour[0].probability > 0.5 and colour[0].evidence[0].data["in_own_tote"]
        assert "tote of that colour" in colour[0].message


@pytest.mark.parametrize(("lowest", "expected"), [(0.025, "divert"), (None, "review")])
def test_a_shoebox_swatch_gone_from_the_item_is_a_divert(tmp_path, lowest, expected) -> None:
    """A running shoe's blue shows only on its box's swatch (2-3 % of the item), so its threshold
    supports a review alone; a wrong-coloured shoe's box shows no blue at all, which every
    reference did: that is a divert."""
    sku = "SNEAKER-RUN-BLU-42"
    lowest_share = {} if lowest is None else {sku: lowest}
    AttributeProfile(min_share={sku: 0.015}, n_items={sku: 12}, lowest_share=lowest_share).save(tmp_path / "attributes")
    stage = AttributesStage(model_dir=tmp_path, check_labels=False)
    item = render_item(RECORDS[sku], defects=("wrong_colour",), seed=3, cameras=("top", "left"))
    frames = [Frame.from_array(cam, img) for cam, img in item.images.items()]
    findings = stage(ItemCapture(item_id="s1", sku=sku, frames=frames), StageContext(catalog=Catalog(skus=RECORDS)))
    (finding,) = [f for f in findings if f.kind == "wrong_colour"]
    data = finding.evidence[0].data
    assert data["share"] <= VANISHED_SHARE and data["threshold_trust"] == "review"
    if expected == "divert":
        assert finding.probability > 0.5 and data["colour_vanished"] and "every reference" in finding.message
    else:
        assert finding.probability == REVIEW_CEILING_P and not data["colour_vanished"]


def test_lab_conversion_is_cie() -> None:
    assert to_lab(np.array([255, 255, 255], np.uint8)) == pytest.approx([100.0, 0.0, 0.0], abs=0.5)


NAVY = [28, 40, 84]


@pytest.mark.parametrize(
    ("around", "inside", "expected"),
    [
        ((52, 54, 56), (250, 250, 246), False),  # a sticker-sized box on a grey belt: the belt is not navy
        ((28, 40, 84), (250, 250, 246), True),  # the box holds only the sticker; navy item all around it
        ((30, 42, 88), (28, 40, 84), True),  # a navy tote around a navy item
        ((214, 180, 40), (28, 40, 84), False),  # a yellow tote
    ],
)
def test_camouflaged_when_the_box_is_surrounded_by_the_catalog_colour(around, inside, expected) -> None:
    frame = np.full((240, 320, 3), (36, 84, 160), np.uint8)  # blue tote at the frame border
    frame[40:200, 60:260] = around
    frame[100:140, 140:180] = inside
    assert camouflaged(frame, [140, 100, 180, 140], NAVY) is expected


def test_camouflaged_views_give_no_colour_verdict() -> None:
    frame = np.full((240, 320, 3), (28, 40, 84), np.uint8)
    frame[100:140, 140:180] = (250, 250, 246)
    view = LocalizedView("top", frame[100:140, 140:180].copy(), np.ones((40, 40), bool), [140, 100, 180, 140])
    read = measure([(view, frame)], NAVY)
    assert read.views == 0 and read.matches
    belt = frame.copy()
    belt[belt[..., 0] == 28] = 52
    read = measure([(view, belt)], NAVY)
    assert read.views == 1 and not read.matches  # the same white crop on a belt: a wrong colour


def test_navy_item_in_a_blue_tote_is_not_a_wrong_colour() -> None:
    """Localisation cuts a navy T-shirt in a blue tote down to its sticker; that view says nothing."""
    sku = "TEE-BASIC-NAVY-M"
    views = _views(sku, 70001, benign=("other_fc_tote",))
    min_share = 0.375  # what the profile learns for this T-shirt from its references
    assert measure(views, RECORDS[sku].colour_rgb, min_share=min_share).matches
    assert not measure(views, RECORDS[sku].colour_rgb, ColourConfig(surround_match=1.01), min_share).matches


def test_profile_skips_a_sku_whose_references_cannot_be_measured(tmp_path) -> None:
    """A SKU whose every reference view is blank gets no learned threshold (the default stays),
    and the other SKUs still get theirs."""
    import json

    from PIL import Image

    from detectors.attributes.profile import fit_profile
    from tunnel_sim import generate_dataset

    root = tmp_path / "ds"
    generate_dataset(root, 2, 3, references_per_sku=1, workers=1)
    refs = [json.loads(line) for line in (root / "references.jsonl").read_text().splitlines()]
    coloured = {r.sku for r in RECORDS.values() if r.colour_rgb is not None}
    blank_sku = next(r["sku"] for r in refs if r["sku"] in coloured)
    for ref in refs:
        if ref["sku"] == blank_sku:
            for frame in ref["frames"]:
                Image.new("RGB", (frame["width"], frame["height"]), (90, 90, 90)).save(root / frame["uri"])
    profile = fit_profile(root)
    assert blank_sku not in profile.min_share
    assert len(profile.min_share) >= 10
    assert all(v >= 0.005 for v in profile.min_share.values())
    with pytest.raises(ValueError, match="no normal shares"):
        threshold_from_shares([])


def test_surround_ring_is_the_masked_ring_in_row_major_order() -> None:
    """The strip-cut ring equals a frame-sized mask's pixels, boxes off the frame and inverted included."""
    from detectors.attributes.colour import surround_pixels

    def masked(frame: np.ndarray, box: list[float], frac: float) -> np.ndarray:
        h, w = frame.shape[:2]
        x0, y0, x1, y1 = (round(v) for v in box)
        r = max(4, round(frac * max(x1 - x0, y1 - y0)))
        ring = np.zeros((h, w), bool)
        ring[max(0, y0 - r) : max(0, y1 + r), max(0, x0 - r) : max(0, x1 + r)] = True
        ring[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)] = False
        return frame[ring]

    rng = np.random.default_rng(0)
    for _ in range(2000):
        h, w = (int(v) for v in rng.integers(1, 50, 2))
        frame = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        box = [float(v) for v in rng.uniform(-20, 70, 4)]
        np.testing.assert_array_equal(surround_pixels(frame, box, 0.15), masked(frame, box, 0.15))
