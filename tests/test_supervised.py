"""Supervised classifier: labels from feedback and reviewers, a small training run, the stage, the CLI."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from detectors.anomaly import ModelConfig
from detectors.anomaly.bank import Bank
from detectors.anomaly.model import AnomalyModel
from detectors.anomaly.stage import AnomalyStage
from detectors.localize import localize
from detectors.supervised.bundle import ClassCalibration, SupervisedBundle, read_sign_recall, tokens_of
from detectors.supervised.dataset import FINE_TYPES, Example, label_counts
from detectors.supervised.model import TokenClassifier
from detectors.supervised.residual import EXTRA_CHANNELS, residual_maps, residual_tokens
from detectors.supervised.stage import SupervisedStage
from detectors.supervised.train import TrainConfig, calibrate, flip_tokens, fold_indices, train_supervised
from pipeline.catalog import Catalog
from pipeline.cli import app
from pipeline.policy import DecisionPolicy, PolicyConfig
from pipeline.runner import Inspector
from pipeline.stages import StageContext, load_stage
from pipeline.store import Store
from pipeline.types import Action, Frame, ItemCapture
from pipeline.views import OTHER_LOOK_KEY
from tunnel_sim import render_item
from tunnel_sim.catalog import catalog_records

RECORDS = {r.sku: r for r in catalog_records()}
SKU = "BOOK-NOVEL-0001"


def _example(defect: str | None, seed: int) -> Example:
    item = render_item(RECORDS[SKU], defects=(defect,) if defect else (), seed=seed, cameras=("top",))
    frames = [Frame.from_array(cam, img) for cam, img in item.images.items()]
    capture = ItemCapture(item_id=f"i{seed}", sku=SKU, frames=frames)
    return Example(capture, {defect} if defect else set(), "feedback")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A shared model folder: an anomaly bank of the SKU's normals, and the classifier trained
    on residuals to it (normals for the bank rendered with other seeds than the examples)."""
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("model")
    anomaly = AnomalyModel(ModelConfig(student_steps=20))
    normals = [render_item(RECORDS[SKU], seed=500 + s, cameras=("top",)).images["top"] for s in range(8)]
    anomaly.fit(normals, name=SKU)
    anomaly.save(folder)
    plan = [None] * 20 + ["bent_cover"] * 10 + ["crushed_corner"] * 10
    examples = [_example(d, seed) for seed, d in enumerate(plan)]
    out = folder / "supervised"
    reference = AnomalyModel.load(folder)
    bundle, card = train_supervised(
        examples, out, TrainConfig(epochs=60, patience=15, val_frac=0.35, repeats=2), reference=reference
    )
    return out, bundle, card, examples


def test_training_beats_majority_baseline(trained) -> None:
    out, _, card, _ = trained
    assert (out / "model.pt").is_file() and (out / "model_card.json").is_file()
    assert card["inputs"] == "residual+anomaly" and card["anomaly_version"].startswith("anomaly-")
    # residuals are read against the bank's features, so at the reference model's input size
    assert card["image_size"] == trained[1].image_size == ModelConfig().image_size
    written = json.loads((out / "model_card.json").read_text())
    assert written["version"] == card["version"] and written["date"]
    assert written["data"]["labels"]["bent_cover"] == 10 and written["data"]["labels"]["normal"] == 20
    assert card["metrics_heldout"]["macro_f1"] > card["baseline_majority_heldout"]["macro_f1"]
    assert card["metrics_heldout"]["macro_f1"] >= 0.5
    # a sign at a lower operating point: at least the line's recall, which the investigator reads
    for name, row in card["metrics_heldout"]["per_class"].items():
        assert row["recall"] <= row["recall_at_complaint"] <= row["recall_at_described"] <= 1.0, name
    assert card["metrics_heldout"]["per_class"]["bent_cover"]["recall_at_described"] > 0.5
    signs = read_sign_recall(out)
    assert signs is not None and signs.version == card["version"]
    assert signs.heldout == "out-of-fold (3 folds x 2 rounds)"
    assert signs.recall == {k: v["recall_at_described"] for k, v in card["metrics_heldout"]["per_class"].items()}
    assert read_sign_recall(out / "missing") is None
    # cross-fitted twice: every item held out once a round, one network per fold and round shipped
    assert written["data"]["heldout"] == "out-of-fold (3 folds x 2 rounds)" and written["data"]["heldout_items"] == 40
    assert len(trained[1].nets) == 6 and len(written["training"]["epochs_run"]) == 6


def test_rounds_average_each_items_held_out_logits() -> None:
    """Each round splits the items its own way; an item's logit is the mean of the networks that
    did not see it, one per round."""
    from detectors.supervised.train import cross_fit

    rng = np.random.default_rng(0)
    labels = np.zeros((24, len(FINE_TYPES)), np.float32)
    labels[:8, 0] = 1
    tokens = [rng.normal(size=(1, 49, 8)).astype(np.float32) + labels[i, 0] for i in range(24)]
    cfg = TrainConfig(epochs=3, folds=2, repeats=2, augment=False)
    nets, idx, logits, histories = cross_fit(tokens, labels, cfg)
    assert len(nets) == len(histories) == 4 and list(idx) == list(range(24))
    firsts = [fold_indices(labels, 2, seed) for seed in (0, 1000)]
    assert not np.array_equal(*firsts)  # another split each round
    expected = np.zeros_like(logits)
    for r, fold in enumerate(firsts):
        for f in range(2):
            rows = np.flatnonzero(fold == f)
            bundle = SupervisedBundle(list(FINE_TYPES), [nets[2 * r + f]], {}, "")
            expected[rows] += bundle.logits([tokens[i] for i in rows]) / 2
    assert np.allclose(logits, expected, atol=1e-5)


@pytest.mark.parametrize(
    ("patterns", "folds"),
    [
        ({"0000": 20, "1000": 10, "0100": 10}, 3),
        ({"0000": 7, "0010": 2, "1000": 1}, 3),  # rare patterns still land in different folds
        ({"0000": 9, "0001": 6}, 2),
    ],
)
def test_folds_are_stratified(patterns: dict[str, int], folds: int) -> None:
    labels = np.array([[c == "1" for c in key] for key, n in patterns.items() for _ in range(n)], np.float32)
    fold = fold_indices(labels, folds, seed=0)
    assert set(fold) <= set(range(folds))
    for key in patterns:
        rows = np.all(labels == np.array([c == "1" for c in key]), axis=1)
        counts = np.bincount(fold[rows], minlength=folds)
        assert counts.max() - counts.min() <= 1, (key, counts)
    sizes = np.bincount(fold, minlength=folds)
    assert sizes.max() - sizes.min() <= 1


def test_flips_keep_each_view_s_tokens() -> None:
    tokens = torch.arange(2 * 3 * 49 * 4, dtype=torch.float32).reshape(2, 3, 49, 4)
    flipped = flip_tokens(tokens, np.random.default_rng(1))
    assert flipped.shape == tokens.shape and not torch.equal(flipped, tokens)
    for b in range(2):
        for v in range(3):  # same tokens, rearranged within the view
            assert torch.equal(flipped[b, v].sort(dim=0).values, tokens[b, v].sort(dim=0).values)
    grid = tokens[0, 0].reshape(7, 7, 4)
    assert any(
        torch.equal(flipped[0, 0].reshape(7, 7, 4), g) for g in (grid, grid.flip(0), grid.flip(1), grid.flip(0).flip(1))
    )


def test_ensemble_averages_and_round_trips(tmp_path) -> None:
    torch.manual_seed(0)
    nets = [TokenClassifier(8, 4, dim=16, depth=1, heads=2).eval() for _ in range(2)]
    cal = {k: ClassCalibration(0.0) for k in FINE_TYPES}
    bundle = SupervisedBundle(list(FINE_TYPES), nets, cal, "supervised-test")
    items = [np.random.default_rng(i).normal(size=(2, 49, 8)).astype(np.float16) for i in range(3)]
    each = [SupervisedBundle(list(FINE_TYPES), [n], cal, "").logits(items) for n in nets]
    assert np.allclose(bundle.logits(items), np.mean(each, axis=0), atol=1e-6)
    bundle.save(tmp_path)
    loaded = SupervisedBundle.load(tmp_path)
    assert len(loaded.nets) == 2 and np.allclose(loaded.logits(items), bundle.logits(items), atol=1e-6)


def test_single_network_model_files_still_load(tmp_path) -> None:
    """Model files written before the ensemble hold one network under "state"."""
    net = TokenClassifier(8, 4, dim=16, depth=1, heads=2).eval()
    torch.save(
        {
            "classes": list(FINE_TYPES),
            "config": net.config,
            "state": net.state_dict(),
            "calibration": {k: {"threshold": 0.0, "slope": 1.0, "intercept": 0.0} for k in FINE_TYPES},
            "version": "supervised-1-old",
            "meta": {},
        },
        tmp_path / "model.pt",
    )
    loaded = SupervisedBundle.load(tmp_path)
    assert len(loaded.nets) == 1 and loaded.version == "supervised-1-old"


def test_residual_is_the_difference_from_the_nearest_normal_patch() -> None:
    normal = np.array([[1.0, 0.0], [0.0, 5.0]], np.float32)
    bank = Bank(name="b", patches=normal)
    feats = np.zeros((1, 2, 2, 2), np.float32)  # (V, C, H, W)
    feats[0, :, 0, 0] = [1.0, 0.0]  # a normal patch
    feats[0, :, 0, 1] = [1.0, 2.0]  # two units off the first normal patch
    feats[0, :, 1, 0] = [0.0, 4.0]  # one unit short of the second
    feats[0, :, 1, 1] = [9.0, 9.0]  # off the item
    masks = np.array([[[True, True], [True, False]]])
    maps = residual_maps(feats, masks, bank)
    assert maps.shape == (1, 2 + 2, 2, 2)
    assert np.allclose(maps[0, :2, 0, 0], 0) and maps[0, 2, 0, 0] == 0
    assert np.allclose(maps[0, :2, 0, 1], [0, 2]) and np.isclose(maps[0, 2, 0, 1], 2)
    assert np.allclose(maps[0, :2, 1, 0], [0, -1]) and np.isclose(maps[0, 2, 1, 0], 1)
    assert np.allclose(maps[0, :3, 1, 1], 0) and maps[0, 3, 1, 1] == 0  # off the item: nothing
    tokens = residual_tokens(feats, masks, bank)
    assert tokens.shape == (1, 49, 2 + EXTRA_CHANNELS)
    assert np.isclose(tokens[0, :, 3].max(), 2)  # the peak distance survives pooling


def _scored_views(folder, seed: int = 101, defect: str | None = "bent_cover"):
    """(reference model, the SKU's bank, the prepared features of one rendered item's views)."""
    reference = AnomalyModel.load(folder)
    bank = reference.resolve(SKU)
    capture = _example(defect, seed).capture
    prepared = reference.prepare_views(list(capture.images().values()), list(capture.images()))
    return reference, bank, reference.embed(prepared)


def test_standard_maps_are_the_members_maps_in_calibrated_units(trained) -> None:
    out, _, _, _ = trained
    reference, bank, feats = _scored_views(out.parent)
    standard = reference.standard_maps(bank, feats)
    assert standard.shape == (len(feats), 2, *feats.masks.shape[1:])
    _, maps = reference.raw_scores(bank, feats)
    cal, _ = reference.calibration(bank)
    core = maps["interior"]
    assert np.allclose(standard[:, 0][core], cal.scalers["patch"](maps["patch"])[core], atol=1e-4)
    assert np.all(standard[:, 0][~core] == 0) and np.all(standard[:, 1][~feats.masks] == 0)
    assert np.allclose(standard[:, 1][feats.masks], cal.scalers["student"](maps["student"])[feats.masks], atol=1e-4)
    # the bank rows an earlier search found give the same maps without searching again (the
    # search's expanded distance rounds differently from the direct one)
    again = reference.standard_maps(bank, feats, maps["nearest"])
    assert np.abs(again - standard).max() < 0.01 * max(1.0, np.abs(standard).max())


@pytest.mark.parametrize(
    ("inputs", "extra"),
    [("patch", 0), ("patch+residual", 128 + 128 + EXTRA_CHANNELS), ("residual+anomaly", 128 + EXTRA_CHANNELS + 4)],
)
def test_tokens_as_each_input_kind_names(trained, inputs: str, extra: int) -> None:
    """Classifiers trained on older inputs keep reading theirs; the width says what a token holds."""
    out, bundle, _, _ = trained
    reference, bank, _ = _scored_views(out.parent)
    capture = _example("bent_cover", 101).capture
    views = [v for v in (localize(img, cam) for cam, img in capture.images().items()) if v.found]
    if inputs == "patch":
        tokens = tokens_of(bundle.tok(), views)
        assert tokens.shape == (1, 49, 128)
        return
    tokens = tokens_of(bundle.tok(), views, inputs, reference, bank)
    assert tokens.shape == (1, 49, extra) and tokens.dtype == np.float16
    with pytest.raises(ValueError, match="anomaly model"):
        tokens_of(bundle.tok(), views, inputs)


def test_unknown_token_inputs_are_refused(trained) -> None:
    with pytest.raises(ValueError, match="unknown classifier inputs"):
        tokens_of(trained[1].tok(), [], "pixels")


def test_stage_reports_learned_type(trained) -> None:
    out, _, _, _ = trained
    stage = SupervisedStage(model_dir=out.parent)
    assert stage.reference is not None and not stage.stale
    ctx = StageContext(catalog=Catalog(skus=RECORDS))
    hits = 0
    for seed in range(100, 104):
        findings = stage(_example("bent_cover", seed).capture, StageContext(catalog=Catalog(skus=RECORDS)))
        hits += any(f.kind == "bent_cover" and f.probability >= 0.5 for f in findings)
    assert hits >= 2
    normal = stage(_example(None, 200).capture, ctx)
    # learned types only; a sign below the line names one and the line never acts on it
    assert all(f.kind in FINE_TYPES or f.evidence[0].data["type"] in FINE_TYPES for f in normal)
    assert all(f.kind in FINE_TYPES or (f.kind == "possible_defect" and f.probability == 0.0) for f in normal)
    assert stage.version.startswith("supervised-")


def test_stage_reuses_the_anomaly_stage_patch_features(trained, monkeypatch) -> None:
    out, _, _, _ = trained
    capture = _example("bent_cover", 101).capture
    ctx = StageContext(catalog=Catalog(skus=RECORDS))
    load_stage("localize")(capture, ctx)
    AnomalyStage(model_dir=out.parent)(capture, ctx)
    stage = SupervisedStage(model_dir=out.parent)
    assert stage.reference is not None and stage.bundle is not None
    views = stage._views(capture, ctx)
    bank = stage.reference.resolve(SKU)
    shared, nearest, standard = stage._shared_features(ctx, views, bank)
    assert shared is not None and shared.shape[0] == len(views) == 1
    assert nearest is not None and nearest.shape == (1, *shared.shape[2:])
    assert standard is not None and standard.shape == (1, 2, *shared.shape[2:])
    fresh = stage.bundle.predict(views, stage.reference, bank)

    def no_backbone(_pixels: np.ndarray) -> np.ndarray:
        raise AssertionError("the backbone ran again on views the anomaly stage had embedded")

    def no_search(_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise AssertionError("the bank was searched again for patches the anomaly stage had matched")

    monkeypatch.setattr(stage.bundle.tok(), "maps", no_backbone)
    monkeypatch.setattr(bank, "nearest_patches", no_search)
    monkeypatch.setattr("detectors.anomaly.model.nearest_rows", lambda *_a, **_k: no_search(_a[0]))

    def no_student(*_args: object) -> np.ndarray:
        raise AssertionError("the student ran again on features the anomaly stage had scored")

    monkeypatch.setattr(stage.reference.rt(), "student_errors", no_student)
    reused = stage.bundle.predict(views, stage.reference, bank, shared, nearest, standard)
    assert all(abs(fresh[k][0] - reused[k][0]) < 1e-3 for k in fresh)
    stage(capture, ctx)  # the stage takes the published features by itself


def test_inspection_runs_the_classifier_after_the_anomaly_stage(trained, monkeypatch) -> None:
    """Side by side with the anomaly stage it would embed every view a second time."""
    out, _, _, _ = trained
    stage = SupervisedStage(model_dir=out.parent)

    def no_backbone(_pixels: np.ndarray) -> np.ndarray:
        raise AssertionError("the backbone ran again on views the anomaly stage had embedded")

    monkeypatch.setattr(stage.bundle.tok(), "maps", no_backbone)
    stages = [load_stage("localize"), AnomalyStage(model_dir=out.parent), stage]
    inspector = Inspector(catalog=Catalog(skus=RECORDS), stages=stages, max_workers=3)
    verdict = inspector.inspect(_example("bent_cover", 102).capture)
    assert not [f for f in verdict.findings if f.kind == "stage_error"], verdict.findings


def test_the_likeliest_type_over_the_line_names_the_item(trained) -> None:
    """Types over their thresholds at once: the likeliest is the finding the line acts on, the
    others are signs that say they cleared the line's threshold."""
    out, bundle, _, _ = trained
    every = {k: replace(c, threshold=-1e9) for k, c in bundle.calibration.items()}
    stage = SupervisedStage(model_dir=out.parent, bundle=replace(bundle, calibration=every))
    capture = _example("bent_cover", 100).capture
    findings = stage(capture, StageContext(catalog=Catalog(skus=RECORDS)))
    (named,) = [f for f in findings if f.kind != "possible_defect"]
    assert named.probability >= 0.5 and named.kind in FINE_TYPES
    assert named.probability == max(f.probability for f in findings)
    signs = [f for f in findings if f.kind == "possible_defect"]
    assert sorted(f.evidence[0].data["type"] for f in signs) == sorted(set(FINE_TYPES) - {named.kind})
    assert all(f.evidence[0].data["level"] == "line" and f.probability == 0.0 for f in signs)
    assert all(f"less likely than the {named.kind} it named" in f.message for f in signs)
    scores = stage.bundle.predict(
        stage._views(capture, StageContext(catalog=Catalog(skus=RECORDS))),
        stage.reference,
        stage.reference.resolve(SKU),
    )
    assert named.kind == max(scores, key=lambda k: scores[k].probability)


class _OtherLook:
    """An attributes stage that takes a while, then says the item is another SKU's."""

    name, version, after = "attributes", "1", ("localize",)

    def __call__(self, capture: ItemCapture, ctx: StageContext) -> list:
        time.sleep(0.3)
        ctx.shared[OTHER_LOOK_KEY] = "wrong_item: looks like FOOD-CEREAL-DE-01"
        return []


def test_an_item_unlike_its_sku_gets_no_type(trained) -> None:
    """On an item the attributes stage diverts as another item, everything differs from the SKU's
    normal look: the classifier names no type, and says what it would have named."""
    out, bundle, _, _ = trained
    every = {k: replace(c, threshold=-1e9) for k, c in bundle.calibration.items()}
    stage = SupervisedStage(model_dir=out.parent, bundle=replace(bundle, calibration=every))
    capture = _example("bent_cover", 100).capture
    assert len(stage(capture, StageContext(catalog=Catalog(skus=RECORDS)))) == len(FINE_TYPES)
    ctx = StageContext(catalog=Catalog(skus=RECORDS), shared={OTHER_LOOK_KEY: "wrong_colour: only 2% navy"})
    (info,) = stage(capture, ctx)
    assert info.kind == "info" and info.probability == 0.0
    assert "wrong_colour: only 2% navy" in info.message and sorted(info.evidence[0].data["not_named"]) == sorted(
        FINE_TYPES
    )
    assert DecisionPolicy(PolicyConfig(audit_rate=0.0)).decide("i100", [info], RECORDS[SKU]).action is Action.PASS
    # in an inspection the classifier waits for the slower attributes stage before naming types
    stages = [load_stage("localize"), AnomalyStage(model_dir=out.parent), _OtherLook(), stage]
    with Inspector(catalog=Catalog(skus=RECORDS), stages=stages, max_workers=4) as inspector:
        verdict = inspector.inspect(capture)
    assert [f.kind for f in verdict.findings if f.stage == "supervised"] == ["info"]


def test_classifier_without_its_reference_model_adds_nothing(trained, tmp_path) -> None:
    out, bundle, _, _ = trained
    ctx = StageContext(catalog=Catalog(skus=RECORDS))
    capture = _example("bent_cover", 100).capture
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "model.pt").write_bytes((out / "model.pt").read_bytes())
    alone = SupervisedStage(model_dir=lone)  # no anomaly model beside it
    assert alone.stale and "no anomaly model" in alone.stale and alone.version.endswith("+stale")
    assert alone(capture, ctx) == []
    reenrolled = replace(AnomalyModel.load(out.parent), version="anomaly-1-reenrolled")
    changed = SupervisedStage(model_dir=out.parent, reference=reenrolled)
    assert changed.stale and "anomaly-1-reenrolled" in changed.stale and changed(capture, ctx) == []
    with pytest.raises(ValueError, match="normal bank"):
        bundle.predict([])


def test_no_model_gives_no_findings() -> None:
    assert SupervisedStage()(_example(None, 1).capture, StageContext(catalog=Catalog(skus=RECORDS))) == []


def test_label_counts_and_reviewer_cli(tmp_path) -> None:
    ex = [Example(_example(None, 1).capture, {"stain"}), Example(_example(None, 2).capture, set())]
    assert label_counts(ex)["stain"] == 1 and label_counts(ex)["normal"] == 1
    db = tmp_path / "store.db"
    inspected = Store(db)  # a label goes to the store that inspected the item
    inspected.enqueue(ItemCapture(item_id="S1-000001", sku=SKU, frames=_example(None, 1).capture.frames))
    inspected.close()
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "label",
            "--db",
            str(db),
            "--item",
            "S1-000001",
            "--label",
            "stain",
            "--decision",
            "confirm",
            "--reviewer",
            "ana",
        ],
    )
    assert res.exit_code == 0, res.output
    bad = runner.invoke(
        app, ["label", "--db", str(db), "--item", "S1-000001", "--label", "stain", "--decision", "maybe"]
    )
    assert bad.exit_code == 2
    store = Store(db)
    rows = store.labels("S1-000001")
    store.close()
    assert rows[0]["label"] == "stain" and rows[0]["decision"] == "confirm" and rows[0]["reviewer"] == "ana"


def test_train_cli_rejects_missing_dataset(tmp_path) -> None:
    res = CliRunner().invoke(app, ["train-supervised", "--dataset", str(tmp_path), "--out", str(tmp_path / "m")])
    assert res.exit_code == 2 and "not a dataset folder" in res.output


def test_model_folder_without_classifier_adds_nothing(tmp_path) -> None:
    stage = SupervisedStage(model_dir=tmp_path)
    assert stage.version == "supervised-untrained"
    assert stage(_example("bent_cover", 300).capture, StageContext(catalog=Catalog(skus=RECORDS))) == []


def test_complaint_operating_point_sits_below_the_lines() -> None:
    rng = np.random.default_rng(0)
    normals = rng.normal(0.0, 1.0, (400, 1))
    defects = rng.normal(3.0, 1.0, (40, 1))
    logits = np.concatenate([normals, defects]).astype(np.float32)
    labels = np.concatenate([np.zeros((400, 1)), np.ones((40, 1))]).astype(np.float32)
    cal = calibrate(logits, labels, ["stain"], target_fp=0.01, complaint_fp=0.05, described_fp=0.2)["stain"]
    assert cal.complaint_threshold is not None and cal.complaint_threshold < cal.threshold
    assert cal.described_threshold is not None and cal.described_threshold < cal.complaint_threshold
    assert np.isclose((normals[:, 0] >= cal.threshold).mean(), 0.01, atol=0.005)
    assert np.isclose((normals[:, 0] >= cal.complaint_level).mean(), 0.05, atol=0.01)
    assert np.isclose((normals[:, 0] >= cal.described_level).mean(), 0.2, atol=0.02)
    # classifiers saved before an operating point are read at the next one up
    assert ClassCalibration(threshold=2.0).complaint_level == 2.0
    assert ClassCalibration(threshold=2.0, complaint_threshold=1.0).described_level == 1.0


def test_stage_records_a_sign_below_the_lines_threshold(trained) -> None:
    """A type between the complaint point and the line's threshold: an informational finding
    naming it, which the decision policy never acts on."""
    out, bundle, _, _ = trained
    low = {
        k: replace(c, threshold=1e9, complaint_threshold=-1e9, described_threshold=-1e9)
        for k, c in bundle.calibration.items()
    }
    stage = SupervisedStage(model_dir=out.parent, bundle=replace(bundle, calibration=low))
    findings = stage(_example("bent_cover", 100).capture, StageContext(catalog=Catalog(skus=RECORDS)))
    assert sorted(f.evidence[0].data["type"] for f in findings) == sorted(bundle.classes)
    assert all(f.kind == "possible_defect" and f.probability == 0.0 for f in findings)
    assert all("below the line's threshold" in (f.message or "") for f in findings)
    policy = DecisionPolicy(PolicyConfig(audit_rate=0.0))
    assert policy.decide("i100", findings, RECORDS[SKU]).action is Action.PASS
    assert all(f.evidence[0].data["level"] == "complaint" for f in findings)
    # a sign that clears only the point for a complaint naming its type says so
    named = {
        k: replace(c, threshold=1e9, complaint_threshold=1e9, described_threshold=-1e9)
        for k, c in bundle.calibration.items()
    }
    stage = SupervisedStage(model_dir=out.parent, bundle=replace(bundle, calibration=named))
    findings = stage(_example("bent_cover", 100).capture, StageContext(catalog=Catalog(skus=RECORDS)))
    assert findings and all(f.evidence[0].data["level"] == "described" for f in findings)
    assert all("described level" in (f.message or "") for f in findings)
    assert policy.decide("i100", findings, RECORDS[SKU]).action is Action.PASS
    none = {
        k: replace(c, threshold=1e9, complaint_threshold=1e9, described_threshold=1e9)
        for k, c in bundle.calibration.items()
    }
    quiet = SupervisedStage(model_dir=out.parent, bundle=replace(bundle, calibration=none))
    assert quiet(_example("bent_cover", 100).capture, StageContext(catalog=Catalog(skus=RECORDS))) == []


def test_feedback_labels_follow_each_complaints_root_cause(tmp_path) -> None:
    """A complaint whose cause was on the item at the tunnel labels the item with its visible
    fine types; one cleared by investigation labels it normal; the rest label nothing."""
    from detectors.supervised.dataset import CLEARED_CAUSES, VISIBLE_CAUSES, feedback_examples
    from pipeline.dataset import Dataset
    from tunnel_sim.generate import generate_dataset

    generate_dataset(tmp_path / "ds", items=80, seed=21, references_per_sku=0, defect_rate=0.7, workers=1)
    dataset = Dataset.open(tmp_path / "ds")
    truths = {it.capture.item_id: it.truth for it in dataset.items()}
    examples = feedback_examples(dataset)
    complaints = list(dataset.feedback())
    assert complaints
    for complaint in complaints:
        cause, item = complaint["truth"]["root_cause"], complaint["item_id"]
        if cause in VISIBLE_CAUSES:
            visible = {d.type for d in truths[item].defects if d.visible}
            assert examples[item].labels == visible & set(FINE_TYPES), complaint
        elif cause in CLEARED_CAUSES:
            assert examples[item].labels == set(), complaint
        else:
            assert item not in examples, complaint
    seals = [ex for ex in examples.values() if "broken_seal" in ex.labels]
    assert seals, "a broken seal customers complain about is a class the classifier learns"
    assert all(ex.source == "feedback" for ex in examples.values())


@pytest.mark.parametrize(
    "card",
    [
        "{not json",
        json.dumps({"version": "v1"}),
        # a card written before it recorded the recall at the lower operating points
        json.dumps({"version": "v1", "metrics_heldout": {"per_class": {"stain": {"recall": 0.36}}}}),
        json.dumps({"version": "v1", "metrics_heldout": {"per_class": ["stain"]}}),
        json.dumps(
            {"version": "v1", "data": "x", "metrics_heldout": {"per_class": {"stain": {"recall_at_described": 1}}}}
        ),
    ],
)
def test_a_card_without_sign_recall_gives_none(tmp_path, card: str) -> None:
    (tmp_path / "model_card.json").write_text(card)
    assert read_sign_recall(tmp_path) is None
