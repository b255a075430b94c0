"""Contact sheet of a dataset: each item's views side by side, labelled, with defect outlines."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw

from pipeline.dataset import Dataset
from pipeline.imageio import read_image
from tunnel_sim.fonts import get_font

THUMB_W, THUMB_H = 256, 192
CAPTION_H = 22


def contact_sheet(root: Path | str, out: Path | str, *, max_items: int = 24, defective_first: bool = True) -> Path:
    """Write a PNG grid (one row per item, one column per camera) and return its path."""
    dataset = Dataset.open(root)
    entries = list(dataset.items())
    if defective_first:
        entries.sort(key=lambda e: (not (e.truth and e.truth.is_defective), e.capture.item_id))
    entries = entries[:max_items]
    if not entries:
        raise ValueError(f"{root}: the manifest has no items")
    cameras = [f.camera for f in entries[0].capture.frames]
    sheet = Image.new("RGB", (THUMB_W * len(cameras), (THUMB_H + CAPTION_H) * len(entries)), (250, 250, 250))
    draw = ImageDraw.Draw(sheet)
    font = get_font("dejavu", 13)
    for row, entry in enumerate(entries):
        y = row * (THUMB_H + CAPTION_H)
        truth = entry.truth
        labels = [d.type for d in truth.defects] if truth else []
        labels += [f"({b})" for b in (truth.benign if truth else [])]
        caption = f"{entry.capture.item_id}  {entry.capture.sku}  {', '.join(labels) or 'ok'}"
        draw.text((4, y + 3), caption, font=font, fill=(170, 20, 20) if truth and truth.is_defective else (30, 30, 30))
        for col, frame in enumerate(entry.capture.frames):
            image = frame.load(dataset.root).copy()
            for defect in truth.defects if truth else []:
                mask_path = defect.masks.get(frame.camera)
                if mask_path:
                    mask = read_image(dataset.root / mask_path)[..., 0] > 127
                    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
                    cv2.drawContours(image, contours, -1, (255, 40, 40), 2)
            thumb = cv2.resize(image, (THUMB_W, THUMB_H), interpolation=cv2.INTER_AREA)
            sheet.paste(Image.fromarray(thumb), (col * THUMB_W, y + CAPTION_H))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out
