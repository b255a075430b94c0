"""Damage patterns over a period: what the tunnel and the customers keep finding, per seller, SKU
or lot, so a team can take counts and example photos to the seller or manufacturer.

Inputs are the store (captures and findings) plus complaints: the investigations written by
`tunnelpi investigate` (investigations.jsonl beside the store) and, when a dataset is given,
its feedback.jsonl. Complaint texts are redacted, then grouped by meaning with the offline
sentence-embedding model.
"""

from __future__ import annotations

import base64
import io
import json
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Collection
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any, Literal

from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import BaseModel, Field

from llm_agent.evidence import damage_pattern, stored_images_root
from llm_agent.images import thumbnail_uri
from llm_agent.intake import damage_kinds
from llm_agent.redact import redact
from llm_agent.taxonomy import DAMAGE_TYPES
from pipeline.jsonl import iter_jsonl
from pipeline.store import StoreError

GroupBy = Literal["seller", "sku", "lot"]
IGNORED_KINDS = frozenset({"no_reference", "image_error", "ok"})


class ComplaintCluster(BaseModel):
    size: int
    example: str
    texts: list[str]
    root_causes: dict[str, int] = Field(default_factory=dict)


class Example(BaseModel):
    item_id: str
    kind: str
    probability: float
    camera: str | None = None
    image: str | None = None
    """data: URI thumbnail with the finding's box drawn."""


class Group(BaseModel):
    key: str
    items: int
    flagged_items: int
    flag_rate: float
    kinds: dict[str, int]
    complaints: int
    described: dict[str, int] = Field(default_factory=dict)
    """Kinds of damage the group's complaints describe (`llm_agent.intake.damage_kinds`)."""
    damage_pattern: dict[str, int] = Field(default_factory=dict)
    """Damage types the tunnel named on many of the group's items (`evidence.damage_pattern`, the
    rule an investigation applies to a lot): type -> items."""
    root_causes: dict[str, int]
    daily: dict[str, int]
    examples: list[Example] = Field(default_factory=list)
    summary: str


class PatternReport(BaseModel):
    by: GroupBy
    since: str | None
    items: int
    flagged_items: int
    complaints: int
    groups: list[Group]
    clusters: list[ComplaintCluster]
    trend_png: str | None = None
    upstream_summary: list[str]


def _rows(db: Path, since: str | None) -> tuple[list[sqlite3.Row], list[sqlite3.Row]]:
    """Captures (since `since`) and their confident findings; `StoreError` when `db` is not a store."""
    if db.is_dir():
        raise StoreError(f"{db}: not a tunnelpi store (a folder)")
    try:
        return _query(db, since)
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{db}: not a tunnelpi store ({exc})") from None


def _query(db: Path, since: str | None) -> tuple[list[sqlite3.Row], list[sqlite3.Row]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        where, args = ("WHERE captured_at >= ?", [since]) if since else ("", [])
        captures = conn.execute(
            f"SELECT item_id, sku, lot, seller, captured_at, capture_json FROM captures {where}", args
        ).fetchall()
        cond = " AND c.captured_at >= ?" if since else ""
        findings = conn.execute(
            "SELECT f.item_id, f.kind, f.probability, f.finding_json FROM findings f JOIN captures c USING (item_id)"
            f" WHERE f.probability >= 0.5{cond}",
            args,
        ).fetchall()
    finally:
        conn.close()
    return captures, findings


def _complaints(db: Path, dataset: Path | None, since: str | None) -> list[dict[str, Any]]:
    out = []
    inv = db.parent / "investigations.jsonl"
    if inv.exists():
        for r in iter_jsonl(inv):
            out.append(
                {
                    "item_id": r["item_id"],
                    "text": r.get("complaint_text", ""),
                    "root_cause": r.get("root_cause"),
                    "created_at": r.get("created_at"),
                }
            )
    seen = {c["item_id"] for c in out}
    if dataset is not None and (dataset / "feedback.jsonl").exists():
        for r in iter_jsonl(dataset / "feedback.jsonl"):
            if r["item_id"] not in seen:
                out.append(
                    {
                        "item_id": r["item_id"],
                        "text": r.get("text", ""),
                        "root_cause": None,
                        "created_at": r.get("created_at"),
                    }
                )
    for c in out:
        c["text"] = redact(c["text"] or "")[0]
    return [c for c in out if not since or not c["created_at"] or str(c["created_at"]) >= since]


def cluster_texts(texts: list[str], threshold: float = 0.45) -> list[list[int]]:
    """Groups of complaint indices with similar meaning (agglomerative, cosine distance)."""
    if len(texts) < 2:
        return [list(range(len(texts)))] if texts else []
    from sklearn.cluster import AgglomerativeClustering

    from llm_agent.intake import embed

    labels = AgglomerativeClustering(
        n_clusters=None, metric="cosine", linkage="average", distance_threshold=threshold
    ).fit_predict(embed(texts))
    groups: dict[int, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        groups[int(label)].append(i)
    return sorted(groups.values(), key=len, reverse=True)


def _trend_png(groups: list[Group]) -> str | None:
    top = [g for g in groups if g.daily][:6]
    if not top:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.2))
    for g in top:
        days = sorted(g.daily)
        ax.plot(days, [g.daily[d] for d in days], marker="o", label=g.key)
    ax.set_ylabel("flagged items / day")
    ax.legend(fontsize=7)
    fig.autofmt_xdate()
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def damage_patterns(
    db: Path | str,
    *,
    by: GroupBy = "seller",
    since: date | str | None = None,
    dataset: Path | str | None = None,
    top: int = 12,
    examples: int = 3,
) -> PatternReport:
    db = Path(db)
    dataset_path = Path(dataset) if dataset else None
    since_s = since.isoformat() if isinstance(since, date) else since
    captures, findings = _rows(db, since_s)
    meta = {r["item_id"]: r for r in captures}
    images_root = dataset_path or stored_images_root(db)
    key_of = {r["item_id"]: (r[by] or "unknown") for r in captures}
    per_key_items = Counter(key_of.values())
    flagged: dict[str, set[str]] = defaultdict(set)
    kinds: dict[str, Counter[str]] = defaultdict(Counter)
    named: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    daily: dict[str, Counter[str]] = defaultdict(Counter)
    best: dict[str, list[tuple[float, str, dict[str, Any]]]] = defaultdict(list)
    for f in findings:
        if f["kind"] in IGNORED_KINDS or f["item_id"] not in key_of:
            continue
        key = key_of[f["item_id"]]
        if f["item_id"] not in flagged[key]:
            daily[key][meta[f["item_id"]]["captured_at"][:10]] += 1
        flagged[key].add(f["item_id"])
        kinds[key][f["kind"]] += 1
        if f["kind"] in DAMAGE_TYPES:
            named[key][f["kind"]].add(f["item_id"])
        best[key].append((f["probability"], f["item_id"], json.loads(f["finding_json"])))
    complaints = [c for c in _complaints(db, dataset_path, since_s) if c["item_id"] in key_of]
    complaints_by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c in complaints:
        complaints_by_key[key_of[c["item_id"]]].append(c)
    groups = []
    for key, n in per_key_items.items():
        n_flag, comp = len(flagged[key]), complaints_by_key[key]
        if not n_flag and not comp:
            continue
        causes = Counter(c["root_cause"] for c in comp if c["root_cause"])
        described = Counter(k for c in comp for k in damage_kinds(c["text"]))
        top_kinds = ", ".join(f"{k.replace('_', ' ')} ({v})" for k, v in kinds[key].most_common(3))
        summary = f"{by} {key}: {n_flag} of {n} items flagged in the tunnel ({n_flag / n:.1%})" + (
            f", mostly {top_kinds}" if top_kinds else ""
        )
        pattern = damage_pattern(n, {k: sorted(v) for k, v in named[key].items()})
        group_examples = _examples(best[key], meta, images_root, (images_root, db.parent), examples, prefer=pattern)
        for k, ids in sorted(pattern.items(), key=lambda kv: -len(kv[1])):
            summary += f"; damage pattern: {k.replace('_', ' ')} on {len(ids)} of {n} items"
        said = ", ".join(f"{k.replace('_', ' ')} ({v})" for k, v in described.most_common(3))
        summary += (
            f"; {len(comp)} complaint(s)"
            + (f" describing {said}" if said else "")
            + (f", confirmed causes: {', '.join(f'{k} ({v})' for k, v in causes.most_common(3))}" if causes else "")
            + "."
        )
        groups.append(
            Group(
                key=key,
                items=n,
                flagged_items=n_flag,
                flag_rate=round(n_flag / n, 4),
                kinds=dict(kinds[key].most_common()),
                complaints=len(comp),
                described=dict(described.most_common()),
                damage_pattern={k: len(v) for k, v in pattern.items()},
                root_causes=dict(causes),
                daily=dict(sorted(daily[key].items())),
                examples=group_examples,
                summary=summary,
            )
        )
    # a damage pattern is what a seller can act on: such groups lead the upstream summary
    groups.sort(key=lambda g: (bool(g.damage_pattern), g.flagged_items + g.complaints, g.flag_rate), reverse=True)
    groups = groups[:top]
    worded = [c for c in complaints if c["text"]]
    texts = [c["text"] for c in worded]
    clusters = []
    for idx in cluster_texts(texts)[:10]:
        members = [worded[i] for i in idx]
        causes = Counter(m["root_cause"] for m in members if m["root_cause"])
        clusters.append(
            ComplaintCluster(
                size=len(idx), example=texts[idx[0]], texts=[texts[i] for i in idx[:8]], root_causes=dict(causes)
            )
        )
    total_flagged = sum(len(v) for v in flagged.values())
    return PatternReport(
        by=by,
        since=since_s,
        items=len(captures),
        flagged_items=total_flagged,
        complaints=len(complaints),
        groups=groups,
        clusters=clusters,
        trend_png=_trend_png(groups),
        upstream_summary=[g.summary for g in groups[:5]],
    )


def _examples(
    found: list[tuple[float, str, dict[str, Any]]],
    meta: dict[str, Any],
    root: Path,
    allowed: tuple[Path, ...],
    n: int,
    prefer: Collection[str] = (),
) -> list[Example]:
    """`n` findings on distinct items, each with a thumbnail of its frame: those of the `prefer`
    kinds (the group's damage pattern) first, then those that point at a view, most probable first.

    Frame uris are stored data: a thumbnail is drawn only from a file inside `allowed`.
    """

    def rank(t: tuple[float, str, dict[str, Any]]) -> tuple[bool, bool, float]:
        prob, _, finding = t
        on_view = any(e.get("camera") for e in finding.get("evidence", []))
        return finding["kind"] in prefer, on_view, prob

    out, used = [], set()
    for prob, item_id, finding in sorted(found, key=rank, reverse=True):
        if item_id in used or len(out) >= n:
            continue
        used.add(item_id)
        ev = next((e for e in finding.get("evidence", []) if e.get("camera")), None)
        camera = ev["camera"] if ev else None
        image = None
        if camera:
            capture = json.loads(meta[item_id]["capture_json"])
            frame = next((f for f in capture["frames"] if f["camera"] == camera), None)
            if frame:
                image = thumbnail_uri(frame["uri"], allowed, base=root, box=ev.get("box"))
        out.append(
            Example(item_id=item_id, kind=finding["kind"], probability=round(prob, 3), camera=camera, image=image)
        )
    return out


@cache
def _env() -> Environment:
    return Environment(loader=PackageLoader("llm_agent", "templates"), autoescape=select_autoescape(["html", "j2"]))


def to_html(report: PatternReport) -> str:
    return _env().get_template("patterns.html.j2").render(r=report)


def write_patterns(report: PatternReport, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(to_html(report), encoding="utf-8")
    out.with_suffix(".json").write_text(report.model_dump_json(indent=1), encoding="utf-8")
    return out
