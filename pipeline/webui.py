"""The reviewer web UI: review queue, item pages with evidence, reviewer labels, lots, damage patterns.

Server-rendered (FastAPI + Jinja2) so it works from any browser on the line, without a
build step. Reviewer decisions are written to the store's `labels` table, where
`tunnelpi train-supervised --db` and the lot monitor pick them up:

- Accept: one ``confirm`` row per defect kind the model found.
- Override "not a defect": one ``reject`` row per kind the model found.
- Override with a true defect type: ``reject`` rows for the model's other kinds, then a
  ``confirm`` row for the chosen type (the latest row wins for the lot monitor).

Images are read only from inside the data roots (dataset, results folder, the store's
folder); a frame or heatmap that points elsewhere is not shown. Pixels are embedded as
data URIs drawn by `pipeline.report.annotated_view`, so no image route can be abused to
read files.
"""

from __future__ import annotations

import hmac
import json
import re
from base64 import b64decode
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, FastAPI, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from pipeline.catalog import Catalog
from pipeline.jsonl import iter_jsonl
from pipeline.lots import DEFECT_KINDS_EXCLUDED, QUARANTINE_EVENT, LotMonitor, LotSettings
from pipeline.policy import INFO_KINDS
from pipeline.report import ACTION_ORDER, annotated_view
from pipeline.store import Store
from pipeline.types import Action, Evidence, Finding, ItemCapture, Verdict, validate_item_id

PAGE_SIZE = 25
LOTS_SHOWN = 200
VIEW_SIDE = 640
LABEL_PATTERN = re.compile(r"^[a-z0-9_]{1,48}$")
REVIEW_ACTIONS = (Action.DIVERT.value, Action.REVIEW.value)
FLASHES = {
    "accepted": "Accepted: the model's findings are confirmed and stored for retraining.",
    "rejected": "Overridden: marked as not a defect and stored for retraining.",
    "relabelled": "Overridden: the true defect type is stored for retraining.",
}


@dataclass(frozen=True)
class UIConfig:
    db: Path
    dataset: Path | None = None
    results: Path | None = None
    token: str | None = None
    lots: LotSettings | None = None
    """The lot rule a reviewer's confirmations are judged by (the edge's `--policy` "lots" section)."""

    @property
    def images_root(self) -> Path:
        """Where relative frame uris point: the dataset, else the input the results were made from."""
        if self.dataset is not None:
            return self.dataset
        for folder in (self.results, self.db.parent):
            run = folder / "run.json" if folder else None
            if run is not None and run.is_file():
                source = json.loads(run.read_text()).get("input")
                if source and Path(source).is_dir():
                    return Path(source)
        return self.results or self.db.parent

    @property
    def allowed_roots(self) -> tuple[Path, ...]:
        roots = {self.images_root, self.db.parent, *(p for p in (self.dataset, self.results) if p is not None)}
        return tuple(sorted(r.resolve() for r in roots))


def _inside(path: Path, roots: tuple[Path, ...]) -> bool:
    resolved = path.resolve()
    return any(resolved.is_relative_to(root) for root in roots)


def safe_path(uri: str, root: Path, roots: tuple[Path, ...]) -> Path | None:
    """The file a frame/heatmap uri names, or None when it is remote or outside every data root."""
    if "://" in uri or uri.startswith(("memory:", "data:")):
        return None
    path = Path(uri)
    path = path if path.is_absolute() else root / path
    return path if _inside(path, roots) and path.is_file() else None


def _safe_verdict(verdict: Verdict, root: Path, roots: tuple[Path, ...]) -> Verdict:
    """The verdict with heatmaps outside the data roots dropped, so drawing it reads nothing else."""

    def evidence(ev: Evidence) -> Evidence:
        if ev.heatmap_ref and safe_path(ev.heatmap_ref, root, roots) is None:
            return ev.model_copy(update={"heatmap_ref": None})
        return ev

    findings = [f.model_copy(update={"evidence": [evidence(e) for e in f.evidence]}) for f in verdict.findings]
    return verdict.model_copy(update={"findings": findings})


def _data_uri_frame(uri: str) -> str | None:
    """A frame stored inline (data:image/...;base64) is shown as is, after checking it decodes."""
    if not re.match(r"^data:image/(png|jpeg|webp|gif);base64,", uri):
        return None
    try:
        b64decode(uri.split(",", 1)[1], validate=True)
    except ValueError:
        return None
    return uri


def camera_views(capture: ItemCapture, verdict: Verdict, config: UIConfig, overlay: bool) -> list[dict[str, Any]]:
    """Every camera view of the item, with or without the findings drawn on it."""
    root, roots = config.images_root, config.allowed_roots
    drawn = _safe_verdict(verdict, root, roots) if overlay else verdict.model_copy(update={"findings": []})
    views = []
    for frame in capture.frames:
        uri = _data_uri_frame(frame.uri)
        if uri is None:
            path = safe_path(frame.uri, root, roots)
            if path is not None:
                one = capture.model_copy(update={"frames": [frame.model_copy(update={"uri": str(path)})]})
                uri = annotated_view(one, frame.camera, drawn, root, max_side=VIEW_SIDE)
        views.append({"camera": frame.camera, "uri": uri, "source": frame.uri})
    return views


def investigation_for(item_id: str, config: UIConfig) -> dict[str, Any] | None:
    """The newest investigator report on this item: a full report file, else its investigations.jsonl line."""
    folders = [p for p in (config.results, config.db.parent) if p is not None]
    reports = []
    for folder in folders:
        base = folder / "investigations"
        if base.is_dir():
            reports += [p for p in base.rglob(f"investigation_{item_id}.json") if _inside(p, config.allowed_roots)]
    if reports:
        newest = max(reports, key=lambda p: p.stat().st_mtime)
        return {"full": True, **json.loads(newest.read_text(encoding="utf-8"))}
    lines = [
        r
        for folder in dict.fromkeys(folders)
        if (folder / "investigations.jsonl").is_file()
        for r in iter_jsonl(folder / "investigations.jsonl")
        if r.get("item_id") == item_id
    ]
    return {"full": False, **lines[-1]} if lines else None


def defect_kinds(findings: list[Finding]) -> list[str]:
    """Kinds a reviewer confirms or rejects: real defect kinds, else whatever the model flagged
    (never an informational finding: an "expiry_ok" or a sign the line did not act on)."""
    flagged = [f for f in findings if f.kind not in INFO_KINDS]
    kinds = sorted({f.kind for f in flagged if f.kind not in DEFECT_KINDS_EXCLUDED})
    return kinds or sorted({f.kind for f in flagged})


class UIState:
    def __init__(self, config: UIConfig) -> None:
        self.config = config
        self.store = Store(config.db)
        self.monitor = LotMonitor.from_settings(self.store, config.lots, self._categories())

    def _categories(self) -> dict[str, str]:
        """SKU -> category from the dataset's catalog, when there is one (lots' base rates)."""
        path = self.config.dataset / "catalog.json" if self.config.dataset else None
        if path is None or not path.is_file():
            return {}
        return Catalog.load(path).category_by_sku()

    def queue(self, action: str | None, lot: str | None, page: int) -> tuple[list[dict[str, Any]], int]:
        """Diverted / review items, most severe first (divert before review, then highest probability)."""
        actions = [action] if action else list(REVIEW_ACTIONS)
        where = f"v.action IN ({','.join('?' * len(actions))})"
        args: list[Any] = list(actions)
        if lot:
            where, args = where + " AND c.lot = ?", [*args, lot]
        conn = self.store._conn()
        total = conn.execute(
            f"SELECT COUNT(*) FROM verdicts v LEFT JOIN captures c USING (item_id) WHERE {where}", args
        ).fetchone()[0]
        order = " ".join(f"WHEN '{a.value}' THEN {rank}" for a, rank in ACTION_ORDER.items())
        rows = conn.execute(
            "SELECT v.item_id, v.sku, v.action, v.decided_at, c.lot, c.seller,"
            " (SELECT MAX(f.probability) FROM findings f WHERE f.item_id = v.item_id) AS severity,"
            " (SELECT GROUP_CONCAT(DISTINCT f.kind) FROM findings f WHERE f.item_id = v.item_id) AS kinds,"
            " (SELECT l.decision || ' ' || l.label FROM labels l WHERE l.item_id = v.item_id ORDER BY l.id DESC"
            "  LIMIT 1) AS reviewed"
            f" FROM verdicts v LEFT JOIN captures c USING (item_id) WHERE {where}"
            f" ORDER BY CASE v.action {order} END, severity DESC, v.item_id LIMIT ? OFFSET ?",
            [*args, PAGE_SIZE, (page - 1) * PAGE_SIZE],
        ).fetchall()
        return [dict(r) for r in rows], total

    def lots(self) -> list[dict[str, Any]]:
        """The most recently received lots with their assessment and any quarantine event."""
        rows = self.store._conn().execute(
            "SELECT lot, MAX(received_at) AS last FROM captures WHERE lot IS NOT NULL GROUP BY lot"
            " ORDER BY last DESC LIMIT ?",
            (LOTS_SHOWN,),
        )
        lots = [r["lot"] for r in rows]
        events = {e.payload.get("lot"): e.payload for e in self.store.events(QUARANTINE_EVENT)}
        return [{"assessment": self.monitor.assess_lot(lot), "event": events.get(lot)} for lot in lots]

    def known_labels(self) -> list[str]:
        """Defect types a reviewer can pick: those the supervised classifier learns plus every kind seen."""
        from detectors.supervised.dataset import FINE_TYPES

        kinds = {r[0] for r in self.store._conn().execute("SELECT DISTINCT kind FROM findings")}
        return sorted((set(FINE_TYPES) | kinds) - DEFECT_KINDS_EXCLUDED)


@cache
def _env() -> Environment:
    env = Environment(loader=PackageLoader("pipeline", "templates/ui"), autoescape=select_autoescape(["html", "j2"]))
    env.filters["urlquote"] = lambda s: quote(str(s), safe="")
    return env


def _render(request: Request, name: str, **context: Any) -> HTMLResponse:
    html = _env().get_template(name).render(request=request, **context)
    return HTMLResponse(html)


def _credentials_ok(header: str | None, token: str) -> bool:
    """Bearer <token>, or HTTP Basic with the token as password (so a plain browser can log in)."""
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() == "bearer":
        given = value.strip()
    elif scheme.lower() == "basic":
        try:
            given = b64decode(value.strip(), validate=True).decode().partition(":")[2]
        except ValueError:
            return False
    else:
        return False
    return hmac.compare_digest(given.encode(), token.encode())


def _item_id(item_id: str) -> str:
    try:
        return validate_item_id(item_id)
    except ValueError as exc:
        raise HTTPException(404, "no such item") from exc


def create_ui(
    db: Path | str,
    dataset: Path | str | None = None,
    results: Path | str | None = None,
    token: str | None = None,
    lots: LotSettings | None = None,
) -> FastAPI:
    """The reviewer UI over one store; `token` (bearer or basic password) guards every page when set."""
    config = UIConfig(
        db=Path(db),
        dataset=Path(dataset) if dataset else None,
        results=Path(results) if results else None,
        token=token,
        lots=lots,
    )
    if not config.db.is_file():
        raise FileNotFoundError(f"{config.db}: store not found")
    state = UIState(config)

    def guard(request: Request) -> None:
        if token is not None and not _credentials_ok(request.headers.get("authorization"), token):
            raise HTTPException(401, "login required", headers={"WWW-Authenticate": 'Basic realm="tunnelpi"'})
        if request.method == "POST":
            # A form posted from another site would carry the browser's saved login: refuse it.
            origin = request.headers.get("origin")
            if request.headers.get("sec-fetch-site") == "cross-site" or (
                origin and urlsplit(origin).netloc != request.headers.get("host")
            ):
                raise HTTPException(403, "cross-site form posts are refused")

    app = FastAPI(title="tunnelpi reviewer", dependencies=[Depends(guard)], docs_url=None, redoc_url=None)
    app.state.ui = state

    @app.get("/", response_class=HTMLResponse)
    def queue(
        request: Request,
        action: Annotated[str | None, Query(pattern="^(divert|review)$")] = None,
        lot: Annotated[str | None, Query(max_length=128)] = None,
        page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    ) -> HTMLResponse:
        rows, total = state.queue(action, lot, page)
        pages = max(1, -(-total // PAGE_SIZE))
        return _render(request, "queue.html.j2", rows=rows, total=total, page=page, pages=pages, action=action, lot=lot)

    @app.get("/items/{item_id}", response_class=HTMLResponse)
    def item(
        request: Request, item_id: str, overlay: bool = True, flash: Annotated[str | None, Query()] = None
    ) -> HTMLResponse:
        item_id = _item_id(item_id)
        capture, verdict = state.store.capture(item_id), state.store.verdict(item_id)
        if capture is None or verdict is None:
            raise HTTPException(404, "no such item")
        return _render(
            request,
            "item.html.j2",
            capture=capture,
            verdict=verdict,
            views=camera_views(capture, verdict, config, overlay),
            overlay=overlay,
            kinds=defect_kinds(verdict.findings),
            choices=state.known_labels(),
            labels=state.store.labels(item_id),
            investigation=investigation_for(item_id, config),
            flash=FLASHES.get(flash or ""),
        )

    @app.post("/items/{item_id}/label")
    def label(
        item_id: str,
        decision: Annotated[str, Form(pattern="^(accept|reject|relabel)$")],
        label: Annotated[str | None, Form(max_length=48)] = None,
        reviewer: Annotated[str | None, Form(max_length=64)] = None,
        note: Annotated[str | None, Form(max_length=2000)] = None,
    ) -> RedirectResponse:
        item_id = _item_id(item_id)
        verdict = state.store.verdict(item_id)
        if verdict is None:
            raise HTTPException(404, "no such item")
        kinds = defect_kinds(verdict.findings)
        reviewer, note = (reviewer or "").strip() or None, (note or "").strip() or None
        if decision == "accept":
            if not kinds:
                raise HTTPException(422, "the model found nothing to accept; override instead")
            rows, flash = [(k, "confirm") for k in kinds], "accepted"
        elif decision == "reject":
            rows, flash = [(k, "reject") for k in kinds] or [("normal", "confirm")], "rejected"
        else:
            if not label or not LABEL_PATTERN.match(label):
                raise HTTPException(422, "pick the true defect type (lower-case letters, digits, _)")
            rows = [(k, "reject") for k in kinds if k != label] + [(label, "confirm")]
            flash = "relabelled"
        for kind, dec in rows:
            state.store.add_label(item_id, kind, dec, reviewer=reviewer, note=note)
        state.monitor.reviewed(item_id)
        return RedirectResponse(f"/items/{quote(item_id)}?flash={flash}", status_code=303)

    @app.get("/lots", response_class=HTMLResponse)
    def lots(request: Request) -> HTMLResponse:
        return _render(request, "lots.html.j2", lots=state.lots())

    @app.get("/patterns", response_class=HTMLResponse)
    def patterns(
        request: Request,
        by: Annotated[str, Query(pattern="^(seller|sku|lot)$")] = "seller",
        since: Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}-\d{2}$")] = None,
    ) -> HTMLResponse:
        from llm_agent.patterns import damage_patterns

        report = damage_patterns(config.db, by=by, since=since, dataset=config.dataset)  # type: ignore[arg-type]
        return _render(request, "patterns.html.j2", report=report, by=by, since=since)

    return app
