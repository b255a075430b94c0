"""The tunnel: cameras, belt or tote, item pose, lighting, shadows, blur and sensor noise.

Each planar face of an item is projected into each camera with a homography (exact for a
pinhole camera and a flat face), drawn back to front, and its defect masks are warped with
the same transform, so every frame gets a true pixel mask that respects occlusion.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

import cv2
import numpy as np

from tunnel_sim.render import Part, Product

FRAME_W, FRAME_H = 640, 480
CAMERAS = ("top", "left", "right")

Masks = dict[str, dict[tuple[int, str], np.ndarray]]
"""defect type -> (part index, surface) -> uint8 mask in that surface's texture pixels."""


@dataclass(frozen=True)
class Camera:
    name: str
    position: tuple[float, float, float]
    target: tuple[float, float, float]
    focal_px: float

    @cached_property
    def rotation(self) -> np.ndarray:
        forward = np.subtract(self.target, self.position).astype(np.float64)
        forward /= np.linalg.norm(forward)
        up = np.array([0.0, 1.0, 0.0]) if abs(forward[2]) > 0.99 else np.array([0.0, 0.0, 1.0])
        down = -(up - up.dot(forward) * forward)
        down /= np.linalg.norm(down)
        right = np.cross(down, forward)
        return np.stack([right, down, forward])

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World mm (N, 3) -> image px (N, 2) and depth (N,)."""
        cam = (points - np.asarray(self.position)) @ self.rotation.T
        z = cam[:, 2]
        uv = cam[:, :2] / z[:, None] * self.focal_px + np.array([FRAME_W / 2, FRAME_H / 2])
        return uv, z


RIG: dict[str, Camera] = {
    "top": Camera("top", (0.0, 0.0, 980.0), (0.0, 0.0, 0.0), 1180.0),
    "left": Camera("left", (0.0, -660.0, 560.0), (0.0, 0.0, 50.0), 1000.0),
    "right": Camera("right", (0.0, 660.0, 560.0), (0.0, 0.0, 50.0), 1000.0),
}


@dataclass(frozen=True)
class Conveyance:
    """What the item rides on: a belt or a tote of one colour."""

    kind: str
    colour: tuple[int, int, int]


FC_CONVEYANCE: dict[str, Conveyance] = {
    "FC-BER1": Conveyance("belt", (52, 54, 56)),
    "FC-MAD2": Conveyance("tote", (36, 84, 160)),
    "FC-LYS1": Conveyance("tote", (214, 180, 40)),
    "FC-DTM2": Conveyance("tote", (70, 72, 76)),
    "FC-SEA8": Conveyance("belt", (84, 86, 80)),
}
"""Each fulfillment center's belt or tote colour; another FC's tote is a benign variation."""


@dataclass(frozen=True)
class Pose:
    x: float
    y: float
    yaw: float
    upside_down: bool = False


@dataclass(frozen=True)
class Lighting:
    brightness: float
    temperature: tuple[float, float, float]
    gradient_angle: float
    gradient_strength: float
    light_dir: tuple[float, float, float]
    blur_px: int
    noise_sigma: float


def sample_pose(rng: np.random.Generator, *, unusual: bool) -> Pose:
    """Usually aligned with the belt (the induct squares items up); unusual: across it."""
    base = float(rng.choice([0.0, np.pi]))
    yaw = base + (rng.uniform(np.pi / 3, np.pi / 2) * rng.choice([-1, 1]) if unusual else rng.normal(0, 0.2))
    return Pose(float(rng.uniform(-45, 45)), float(rng.uniform(-25, 25)), float(yaw))


def sample_lighting(rng: np.random.Generator) -> Lighting:
    kelvin_shift = rng.uniform(-1, 1)
    temperature = (1 + 0.07 * kelvin_shift, 1.0, 1 - 0.08 * kelvin_shift)
    light = np.array([rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5), 1.0])
    return Lighting(
        brightness=float(rng.uniform(0.95, 1.3)),
        temperature=tuple(float(t) for t in temperature),  # type: ignore[arg-type]
        gradient_angle=float(rng.uniform(0, 2 * np.pi)),
        gradient_strength=float(rng.uniform(0.0, 0.22)),
        light_dir=tuple(float(v) for v in light / np.linalg.norm(light)),  # type: ignore[arg-type]
        blur_px=int(rng.choice([1, 1, 1, 3, 5, 7])),
        noise_sigma=float(rng.uniform(1.5, 5.0)),
    )


@lru_cache(maxsize=32)
def _background(conveyance: Conveyance, camera: str) -> np.ndarray:
    """A belt or tote floor seen by one camera (cached; items shift it as the belt moves)."""
    rng = np.random.default_rng([sum(conveyance.colour), len(camera), ord(camera[0])])
    h, w = FRAME_H, FRAME_W * 2
    base = np.empty((h, w, 3), np.float32)
    base[:] = conveyance.colour
    grain = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 1.2) * 10
    base += grain[..., None]
    if conveyance.kind == "belt":
        streaks = cv2.GaussianBlur(rng.normal(0, 1, (h, 1)).astype(np.float32), (0, 0), 2) * 6
        base += streaks[..., None]
        for x in range(0, w, 420):  # belt splice seams
            base[:, x : x + 3] *= 0.8
    else:
        for y in range(40, h, 70):  # ribbed tote floor
            base[y : y + 4] *= 0.85
        wall = 34 if camera == "top" else 60
        light = np.asarray(conveyance.colour, np.float32) * 1.2 + 20
        base[:wall] = light
        if camera == "top":
            base[-wall:] = light
        base[:wall] -= np.linspace(0, 30, wall, dtype=np.float32)[:, None, None]
    return np.clip(base, 0, 255).astype(np.float32)


def _world_points(part: Part, pose: Pose, outline_pts: np.ndarray, z: float) -> np.ndarray:
    c, s = np.cos(pose.yaw), np.sin(pose.yaw)
    rot = np.array([[c, -s], [s, c]])
    xy = outline_pts @ rot.T + np.array([pose.x, pose.y])
    return np.column_stack([xy, np.full(len(xy), z)])


@dataclass
class _Facet:
    part: int
    surface: str
    texture_box: tuple[int, int, int, int]
    """x0, y0, x1, y1 inside the surface texture."""
    src: np.ndarray
    """4 texture corners (x, y), in order matching `world`."""
    world: np.ndarray
    normal: np.ndarray


def _facets(product: Product, pose: Pose) -> list[_Facet]:
    out: list[_Facet] = []
    c, s = np.cos(pose.yaw), np.sin(pose.yaw)
    for index, part in enumerate(product.parts):
        ztop = part.z0 + part.height
        outline = part.outline
        edges = part.edge_px
        strip_h = part.side.shape[0]
        n = len(outline)
        for i in range(n):
            a, b = outline[i], outline[(i + 1) % n]
            x0, x1 = int(np.floor(edges[i])), int(np.ceil(edges[i + 1]))
            x1 = min(max(x1, x0 + 1), part.side.shape[1])
            world = np.vstack(
                [
                    _world_points(part, pose, np.array([a, b]), ztop),
                    _world_points(part, pose, np.array([b, a]), part.z0),
                ]
            )
            edge = b - a
            normal_local = np.array([edge[1], -edge[0]]) / (np.linalg.norm(edge) + 1e-9)
            normal = np.array([c * normal_local[0] - s * normal_local[1], s * normal_local[0] + c * normal_local[1], 0])
            src = np.array(
                [[edges[i] - x0, 0], [edges[i + 1] - x0, 0], [edges[i + 1] - x0, strip_h], [edges[i] - x0, strip_h]]
            )
            out.append(_Facet(index, "side", (x0, 0, x1, strip_h), src, world, normal))
        xmin, ymax = outline[:, 0].min(), outline[:, 1].max()
        xmax, ymin = outline[:, 0].max(), outline[:, 1].min()
        corners = np.array([[xmin, ymax], [xmax, ymax], [xmax, ymin], [xmin, ymin]])
        th, tw = part.top.shape[:2]
        src = np.array([[0, 0], [tw, 0], [tw, th], [0, th]], dtype=np.float64)
        out.append(
            _Facet(index, "top", (0, 0, tw, th), src, _world_points(part, pose, corners, ztop), np.array([0, 0, 1.0]))
        )
    return out


def _facet_shade(facet: _Facet, camera: Camera, lighting: Lighting, gloss: float) -> float:
    light = np.asarray(lighting.light_dir)
    diffuse = max(0.0, float(facet.normal @ light))
    centre = facet.world.mean(axis=0)
    view = np.asarray(camera.position) - centre
    view /= np.linalg.norm(view)
    half = (light + view) / np.linalg.norm(light + view)
    spec = gloss * max(0.0, float(facet.normal @ half)) ** 20
    return 0.5 + 0.55 * diffuse + spec


def render_view(
    product: Product,
    masks: Masks,
    pose: Pose,
    camera: Camera,
    lighting: Lighting,
    conveyance: Conveyance,
    belt_offset: int,
    noise_rng: np.random.Generator,
) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """One camera frame: RGB uint8, defect masks (bool) visible in it, and the item's silhouette."""
    bg = _background(conveyance, camera.name)
    frame = bg[:, belt_offset : belt_offset + FRAME_W].copy()
    item_mask = np.zeros((FRAME_H, FRAME_W), np.uint8)
    defect_masks = {name: np.zeros((FRAME_H, FRAME_W), np.uint8) for name in masks}
    _draw_shadow(frame, product, pose, camera, lighting)
    facets = _facets(product, pose)
    visible = []
    for facet in facets:
        uv, depth = camera.project(facet.world)
        if np.any(depth <= 1):
            continue
        view = np.asarray(camera.position) - facet.world.mean(axis=0)
        if facet.normal @ view <= 0:
            continue
        visible.append((float(depth.mean()), facet, uv))
    visible.sort(key=lambda v: -v[0])
    for _, facet, uv in visible:
        part = product.parts[facet.part]
        texture = part.top if facet.surface == "top" else part.side
        x0, y0, x1, y1 = facet.texture_box
        tex = texture[y0:y1, x0:x1]
        bx0, by0 = np.floor(uv.min(axis=0)).astype(int)
        bx1, by1 = np.ceil(uv.max(axis=0)).astype(int) + 1
        bx0, by0 = max(bx0, 0), max(by0, 0)
        bx1, by1 = min(bx1, FRAME_W), min(by1, FRAME_H)
        if bx1 <= bx0 or by1 <= by0:
            continue
        homography = cv2.getPerspectiveTransform(facet.src.astype(np.float32), (uv - [bx0, by0]).astype(np.float32))
        size = (bx1 - bx0, by1 - by0)
        warped = cv2.warpPerspective(tex, homography, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        cover = np.zeros((size[1], size[0]), np.uint8)
        cv2.fillConvexPoly(cover, np.round(uv - [bx0, by0]).astype(np.int32), 255)
        alpha = warped[..., 3].astype(np.float32) * (cover.astype(np.float32) / 255.0) / 255.0
        shade = _facet_shade(facet, camera, lighting, part.gloss)
        region = frame[by0:by1, bx0:bx1]
        a = alpha[..., None]
        region[:] = region * (1 - a) + np.minimum(warped[..., :3].astype(np.float32) * shade, 255) * a
        covered = alpha > 0.35
        item_mask[by0:by1, bx0:bx1][covered] = 255
        for name, per_surface in masks.items():
            surface_mask = per_surface.get((facet.part, facet.surface))
            target = defect_masks[name][by0:by1, bx0:bx1]
            if surface_mask is None:
                target[covered] = 0
                continue
            warped_mask = cv2.warpPerspective(surface_mask[y0:y1, x0:x1], homography, size, flags=cv2.INTER_NEAREST)
            target[covered] = warped_mask[covered]
    frame = _light_and_sensor(frame, lighting, noise_rng)
    return frame, {k: v > 127 for k, v in defect_masks.items()}, item_mask > 0


def _draw_shadow(frame: np.ndarray, product: Product, pose: Pose, camera: Camera, lighting: Lighting) -> None:
    scale = 4  # a soft shadow needs no detail: draw and blur it at quarter resolution
    shadow = np.zeros((FRAME_H // scale, FRAME_W // scale), np.float32)
    lx, ly, lz = lighting.light_dir
    for part in product.parts:
        if part.z0 > 0:
            continue
        shift = np.array([-lx / lz, -ly / lz]) * part.height * 0.35
        foot = _world_points(
            part,
            pose,
            part.outline
            + shift @ np.array([[np.cos(pose.yaw), -np.sin(pose.yaw)], [np.sin(pose.yaw), np.cos(pose.yaw)]]),
            0.0,
        )
        uv, depth = camera.project(foot)
        if np.all(depth > 1):
            cv2.fillPoly(shadow, [np.round(uv / scale).astype(np.int32)], 1.0)
    shadow = cv2.resize(cv2.GaussianBlur(shadow, (0, 0), 9 / scale), (FRAME_W, FRAME_H))
    frame *= (1 - 0.45 * shadow)[..., None]


@lru_cache(maxsize=1)
def _frame_grid() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normalised x, y in [-1, 1] and the lens vignette, computed once per process."""
    yy, xx = np.mgrid[0:FRAME_H, 0:FRAME_W].astype(np.float32)
    x = (xx - FRAME_W / 2) / (FRAME_W / 2)
    y = (yy - FRAME_H / 2) / (FRAME_H / 2)
    return x, y, 1 - 0.18 * (x**2 + y**2)


@lru_cache(maxsize=1)
def _noise_bank() -> np.ndarray:
    """Sensor noise field (luma plus weaker chroma) twice the frame size; frames take random windows.

    Drawing fresh Gaussian noise for every frame costs more than the rest of the render.
    """
    rng = np.random.default_rng(0x5E45)
    luma = rng.standard_normal((2 * FRAME_H, 2 * FRAME_W, 1), dtype=np.float32)
    chroma = rng.standard_normal((2 * FRAME_H, 2 * FRAME_W, 3), dtype=np.float32)
    return luma + 0.5 * chroma


def _light_and_sensor(frame: np.ndarray, lighting: Lighting, rng: np.random.Generator) -> np.ndarray:
    x, y, vignette = _frame_grid()
    direction = np.cos(lighting.gradient_angle) * x + np.sin(lighting.gradient_angle) * y
    gain = (lighting.brightness * (1 + lighting.gradient_strength * direction) * vignette)[..., None]
    frame *= gain * np.asarray(lighting.temperature, np.float32)
    if lighting.blur_px > 1:
        kernel = np.full((1, lighting.blur_px), 1.0 / lighting.blur_px, np.float32)
        frame = cv2.filter2D(frame, -1, kernel)
    dy, dx = int(rng.integers(FRAME_H)), int(rng.integers(FRAME_W))
    noise = _noise_bank()[dy : dy + FRAME_H, dx : dx + FRAME_W]
    frame = cv2.scaleAdd(noise, lighting.noise_sigma, frame)
    np.clip(frame, 0, 255, out=frame)
    return frame.astype(np.uint8)
