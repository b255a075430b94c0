"""Belt-motion smear: how far an item moved along the belt while the shutter was open, and
taking it out of the frame before text is read.

An item rides the belt through the tunnel, so each frame is smeared along the belt by belt
speed x exposure (1-7 px on the simulated lines). A print 5-6 px high smeared by 3 px is no
longer legible to the recogniser (held-out simulated prints with 5 px capitals smeared 3 px:
5 % read, 65 % once the smear is taken out). The smear is a box kernel along the belt, so it is measured from the
frame itself and inverted by Wiener deconvolution along that axis alone.

Measuring it: the derivative along the belt of a frame smeared by L px is the sharp frame's
edges each seen twice, L px apart with opposite signs, so the derivative's autocorrelation dips
at lag L (the belt and the item move together, so the whole frame carries the same smear), and
it is high at the lags before L, over which the smear made the derivative smooth. A sharp frame's
deepest dip lies at lag 1 or 2: sensor noise and its edges' own width.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.views import LocalizedView

MIN_SMEAR = 3
"""Shortest smear that is taken out: below it the print is as legible as a sharp one."""
MAX_SMEAR = 12
"""Longest smear looked for (a belt at 2 m/s under a 1/1000 s exposure at 6 px/mm)."""
MIN_FALL = 0.1
"""How far (share of the derivative's energy) the autocorrelation must fall from lag 2 to its dip
at the smear's lag. A smeared frame's derivative is smooth over the smear, so lag 2 is high and
the dip deep; a sharp frame's dip beyond lag 2 is a ripple of its print and texture. On 50
simulated development items, views with a 3-7 px smear fell by 0.10-0.73, sharp views that dip
beyond lag 2 by 0.01-0.15 (12 of 14 under 0.1)."""
SMOOTH_FROM = 5
"""From this length on, a smear must also leave the autocorrelation above zero on average
between lag 2 and its lag: 48 px capitals with 9 px strokes, sharp, dipped at 9 like a smear
(0.13 fall) with the lags before it at -0.04 on average; 77 of 79 simulated views smeared 5-7 px
averaged above zero."""
WIENER_NOISE = 0.01
"""Noise-to-signal power of the Wiener filter: large enough that the box kernel's spectral
zeros do not blow sensor noise up into strokes."""
BELT_AXIS = 1
"""Image axis the belt runs along in the tunnel's frames (1: left to right)."""


@dataclass(frozen=True)
class Smear:
    """A frame's measured smear along the belt: `length` px (1: sharp) and how far the
    derivative's autocorrelation falls into its dip (`MIN_FALL`)."""

    length: int
    fall: float

    @property
    def worth_removing(self) -> bool:
        return self.length >= MIN_SMEAR


SHARP = Smear(1, 0.0)


def _grey(image: np.ndarray) -> np.ndarray:
    if image.ndim == 3:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return image.astype(np.float32)


def measure_smear(image: np.ndarray, axis: int = BELT_AXIS) -> Smear:
    """The frame's smear along `axis`, from the dip in its derivative's autocorrelation."""
    grey = _grey(image)
    if axis == 0:
        grey = grey.T
    if grey.shape[1] < 4 * MAX_SMEAR or grey.shape[0] < 8:
        return SHARP
    derivative = np.diff(grey, axis=1)
    derivative -= derivative.mean(axis=1, keepdims=True)
    n = cv2.getOptimalDFTSize(derivative.shape[1] + MAX_SMEAR + 1)
    spectrum = np.fft.rfft(derivative, n=n, axis=1)
    autocorrelation = np.fft.irfft((np.abs(spectrum) ** 2).sum(axis=0), n=n)[: MAX_SMEAR + 1]
    if autocorrelation[0] <= 0:
        return SHARP
    autocorrelation = autocorrelation / autocorrelation[0]
    # a sharp frame's deepest dip lies at lag 1 or 2 (sensor noise, its edges' own width)
    lag = int(np.argmin(autocorrelation[2:])) + 2
    fall = float(autocorrelation[2] - autocorrelation[lag])
    # a longer smear makes the derivative smooth up to its lag; a thick stroke's sharp edges
    # dip the autocorrelation at the stroke's width with nothing above zero before it
    smooth = lag < SMOOTH_FROM or float(autocorrelation[2:lag].mean()) > 0.0
    return Smear(lag, fall) if lag >= MIN_SMEAR and fall >= MIN_FALL and smooth else Smear(1, fall)


def remove_smear(image: np.ndarray, length: int, axis: int = BELT_AXIS, noise: float = WIENER_NOISE) -> np.ndarray:
    """The image with a `length` px box smear along `axis` inverted (Wiener); uint8 as given.

    A colour image is corrected on its luminance, the correction added to every channel: the
    smear is the same in each, print is read from its contrast, and it costs a third."""
    if length < 2:
        return image
    data = image if axis == 1 else np.swapaxes(image, 0, 1)
    grey = _grey(np.ascontiguousarray(data))
    width, pad = grey.shape[1], 2 * length + 8
    right = cv2.getOptimalDFTSize(width + 2 * pad) - width - pad
    padded = cv2.copyMakeBorder(grey, 0, 0, pad, right, cv2.BORDER_REFLECT)
    kernel = np.zeros(padded.shape[1], np.float32)
    kernel[:length] = 1.0 / length
    response = np.fft.fft(np.roll(kernel, -(length // 2)))
    inverse = (np.conj(response) / (np.abs(response) ** 2 + noise)).astype(np.complex64)
    correction = _filter_rows(padded, inverse)[:, pad : pad + width] - grey
    restored = data.astype(np.float32) + (correction if data.ndim == 2 else correction[..., None])
    out = np.clip(restored, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(out if axis == 1 else np.swapaxes(out, 0, 1))


def _filter_rows(rows: np.ndarray, response: np.ndarray) -> np.ndarray:
    """Each row of a (H, N) float32 array filtered by a length-N frequency response (OpenCV's
    row DFT: many times faster than numpy's on these sizes)."""
    spectrum = cv2.dft(rows, flags=cv2.DFT_ROWS | cv2.DFT_COMPLEX_OUTPUT)
    filtered = (spectrum[..., 0] + 1j * spectrum[..., 1]) * response[None, :]
    pair = np.ascontiguousarray(np.stack([filtered.real, filtered.imag], axis=-1).astype(np.float32))
    return cv2.idft(pair, flags=cv2.DFT_ROWS | cv2.DFT_REAL_OUTPUT | cv2.DFT_SCALE)


def view_without_smear(frame: np.ndarray, view: LocalizedView | None) -> tuple[np.ndarray, int]:
    """A view to read text on, and the smear in px taken out of it (1: none): the view's crop
    (the frame when no item was found), cut from its frame area with the smear inverted when
    that area shows one. Measured and corrected on the area the crop was cut from, not the
    whole frame: the item's own print is what the measure should read, and the rest costs time."""
    plain = view.crop if view is not None else frame
    x0, y0, x1, y1 = view.footprint(frame.shape) if view is not None else (0, 0, frame.shape[1], frame.shape[0])
    part = frame[y0:y1, x0:x1]
    smear = measure_smear(part)
    if not smear.worth_removing:
        return plain, 1
    sharp = remove_smear(part, smear.length)
    return (view.cut(sharp, (x0, y0)) if view is not None else sharp), smear.length
