"""Portrait -> gaze pack: generate heads, pick them by measured gaze, blend them in, write the pack.

The pack stores the full painting once and, per frame, only the patch where the blend alpha is non-zero;
a contact sheet and a left->right->left preview GIF are written beside it so a person can judge the result
before it goes onto a frame.
"""

from __future__ import annotations

import importlib.util
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw

from edge.errors import PackError
from edge.images import read_rgb
from provisioning.blend import AlphaParams, blend_head, head_patch_rect
from provisioning.eyes import EyeGeometry, locate_eyes
from provisioning.eyewarp import DEFAULT_MAX_SHIFT, eyes_ellipse, generate_heads, head_ellipse
from provisioning.select import select_frames

DEFAULT_SCREEN = (1080, 1920)
#: Candidates per pack frame: selection picks evenly spaced *measured* gazes out of these.
CANDIDATES_PER_FRAME = 2
TOOL = "mona-edge build-pack 1"


@dataclass
class PackPlan:
    """Everything ``build-pack`` was asked for, recorded in the manifest's generator parameters."""

    portrait: Path
    out_dir: Path
    method: str = "eyewarp"
    frames: int = 33
    screen: tuple[int, int] = DEFAULT_SCREEN
    span_deg: tuple[float, float] = (-30.0, 30.0)
    max_shift: float = DEFAULT_MAX_SHIFT
    head_turn: float = 0.0
    slope: float = 10.0
    midpoint: float = 0.7
    name: str | None = None
    driver: Path | None = None
    checkpoint: Path | None = None
    device: str = "cpu"
    batch_size: int = 8
    credits: list[dict] = field(default_factory=list)

    def parameters(self) -> dict:
        params = {"frames": self.frames, "screen": list(self.screen), "span_deg": list(self.span_deg),
                  "alpha": {"slope": self.slope, "midpoint": self.midpoint}}
        if self.method == "eyewarp":
            params.update(max_shift=self.max_shift, head_turn=self.head_turn,
                          candidates=self.frames * CANDIDATES_PER_FRAME)
        else:
            params.update(driver=Path(self.driver).name if self.driver else None,
                          checkpoint=Path(self.checkpoint).name if self.checkpoint else None)
        return params


def fit_canvas(rgb: np.ndarray, screen: tuple[int, int]) -> np.ndarray:
    """Scale the portrait to fit the screen (aspect kept): the pack is made at the size it is shown."""
    h, w = rgb.shape[:2]
    scale = min(screen[0] / w, screen[1] / h)
    size = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
    if size == (w, h):
        return np.ascontiguousarray(rgb)
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return cv2.resize(rgb, size, interpolation=interpolation)


def eyewarp_heads(canvas: np.ndarray, plan: PackPlan) -> tuple[list[np.ndarray], EyeGeometry, AlphaParams]:
    """Full-canvas heads from the weightless eye warp, and the blend ellipse that covers what changed."""
    geometry = locate_eyes(canvas)
    heads = generate_heads(canvas, plan.frames * CANDIDATES_PER_FRAME, geometry=geometry,
                           max_shift=plan.max_shift, head_turn=plan.head_turn)
    centre, radii = head_ellipse(geometry) if plan.head_turn else eyes_ellipse(geometry)
    return heads, geometry, AlphaParams(centre=centre, radii=radii, slope=plan.slope, midpoint=plan.midpoint)


def fomm_heads(canvas: np.ndarray, plan: PackPlan) -> tuple[list[np.ndarray], EyeGeometry, AlphaParams]:
    """Heads animated by FOMM from a driving video, each blended into the full canvas."""
    from provisioning.fomm import animate, load_fomm, read_driving_video

    geometry = locate_eyes(canvas)
    x0, y0, x1, y1 = (float(v) for v in geometry.face_box)
    cx, cy, side = (x0 + x1) / 2, (y0 + y1) / 2, 1.9 * max(x1 - x0, y1 - y0)
    h, w = canvas.shape[:2]
    side = min(side, w, h)
    bx0 = int(round(min(max(cx - side / 2, 0), w - side)))
    by0 = int(round(min(max(cy - side / 2, 0), h - side)))
    box = (bx0, by0, bx0 + int(side), by0 + int(side))
    source = canvas[box[1]:box[3], box[0]:box[2]]
    assert plan.checkpoint is not None and plan.driver is not None  # build_pack checked the plan
    model = load_fomm(plan.checkpoint, device=plan.device)
    driving = read_driving_video(plan.driver)
    predictions = animate(model, source, driving, batch_size=plan.batch_size, progress=True)
    # The ellipse stays inside the crop: FOMM's head is all there is there.
    centre = (box[0] + side / 2, box[1] + side / 2)
    radii = (side * 0.48, side * 0.48)
    alpha = AlphaParams(centre=centre, radii=radii, slope=plan.slope, midpoint=plan.midpoint)
    heads = [blend_head(canvas, p, box, alpha, colour_match=True) for p in predictions]
    return heads, geometry, alpha


def contact_sheet(frames: Sequence[np.ndarray], measured: Sequence[float], rect: tuple[int, int, int, int],
                  columns: int = 4, tile_width: int = 420) -> Image.Image:
    """Every frame's patch region side by side, labelled with its measured gaze."""
    x0, y0, x1, y1 = rect
    scale = tile_width / (x1 - x0)
    tile_h = max(1, int(round((y1 - y0) * scale)))
    rows = (len(frames) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * tile_width, rows * (tile_h + 14)), (20, 20, 20))
    draw = ImageDraw.Draw(sheet)
    for i, (frame, g) in enumerate(zip(frames, measured)):
        tile = Image.fromarray(frame[y0:y1, x0:x1]).resize((tile_width, tile_h), Image.LANCZOS)  # type: ignore[attr-defined]
        col, row = i % columns, i // columns
        sheet.paste(tile, (col * tile_width, row * (tile_h + 14) + 14))
        draw.text((col * tile_width + 3, row * (tile_h + 14) + 1), f"{i:02d}  gaze {g:+.2f}", fill=(255, 255, 0))
    return sheet


def preview_gif(frames: Sequence[np.ndarray], rect: tuple[int, int, int, int], path: Path, width: int = 480,
                frame_ms: int = 50) -> None:
    """The gaze sweeping left -> right -> left, cropped to the face around the patch and sharing one
    palette, so it stays small and quick to make."""
    h, w = frames[0].shape[:2]
    x0, y0, x1, y1 = rect
    mx, my = (x1 - x0) // 3, max((y1 - y0), (x1 - x0) // 3)
    box = (max(0, x0 - mx), max(0, y0 - my), min(w, x1 + mx), min(h, y1 + my))
    size = (width, max(1, int(round((box[3] - box[1]) * width / (box[2] - box[0])))))
    images = [Image.fromarray(f).crop(box).resize(size, Image.LANCZOS)  # type: ignore[attr-defined]
              for f in frames]
    palette = images[len(images) // 2].quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    indexed = [im.quantize(palette=palette, dither=Image.Dither.NONE) for im in images]
    sweep = indexed + indexed[-2:0:-1]
    sweep[0].save(path, save_all=True, append_images=sweep[1:], duration=frame_ms, loop=0)


def build_pack(plan: PackPlan, log: Callable[[str], None] = print) -> dict:
    """Run the whole build; return a summary (paths, timings) after the pack is written."""
    from edge.pack import write_pack

    if plan.method not in ("eyewarp", "fomm"):
        raise PackError(f"method {plan.method!r}: expected 'eyewarp' or 'fomm'")
    if plan.method == "fomm" and not (plan.driver and plan.checkpoint):
        raise PackError("--method fomm needs --driver VIDEO and --checkpoint FILE (vox-cpk.pth.tar)")
    if plan.method == "fomm" and importlib.util.find_spec("torch") is None:  # before minutes of other work
        raise PackError("--method fomm needs PyTorch, which is not installed: pip install 'mona-edge[fomm]' "
                        "(or --method eyewarp, which needs no weights)")
    if plan.frames < 2 or plan.frames > 255:
        raise PackError(f"--frames {plan.frames}: expected 2..255")
    low, high = plan.span_deg  # checked again with the manifest, but only after minutes of work
    if not -90 <= low < high <= 90:
        raise PackError(f"--span-deg {high:g}: expected a viewer angle in (0, 90] degrees")
    timings = {}
    started = time.perf_counter()
    canvas = fit_canvas(read_rgb(plan.portrait, "portrait"), plan.screen)
    timings["load"] = time.perf_counter() - started
    t = time.perf_counter()
    heads, geometry, alpha = (eyewarp_heads if plan.method == "eyewarp" else fomm_heads)(canvas, plan)
    timings["heads"] = time.perf_counter() - t
    t = time.perf_counter()
    indices, measured = select_frames(heads, plan.frames, geometry_hint=geometry)
    timings["select"] = time.perf_counter() - t
    t = time.perf_counter()
    rect = head_patch_rect(canvas.shape, alpha.centre, alpha.radii)
    if plan.method == "eyewarp":  # the same painting with moved eyes: blend, but no colour to match
        whole = (0, 0, canvas.shape[1], canvas.shape[0])
        full = [blend_head(canvas, heads[i], whole, alpha, colour_match=False) for i in indices]
    else:  # FOMM heads arrive blended and colour-matched
        full = [heads[i] for i in indices]
    patches = [np.ascontiguousarray(f[rect[1]:rect[3], rect[0]:rect[2]]) for f in full]
    timings["blend"] = time.perf_counter() - t
    t = time.perf_counter()
    eyes = {"right": [round(float(v), 2) for v in geometry.left.centre],  # the subject's right: image left
            "left": [round(float(v), 2) for v in geometry.right.centre]}
    name = plan.name or Path(plan.portrait).stem
    patch_xywh = (rect[0], rect[1], rect[2] - rect[0], rect[3] - rect[1])
    out = write_pack(plan.out_dir, base=canvas, frames=patches, patch=patch_xywh, name=name, eyes=eyes,
                     span_deg=plan.span_deg, measured=[round(float(m), 4) for m in measured],
                     generator={"method": plan.method, "tool": TOOL, "parameters": plan.parameters()},
                     credits=plan.credits)
    timings["write"] = time.perf_counter() - t
    t = time.perf_counter()
    out = Path(out)
    contact_sheet(full, measured, rect).save(out.parent / f"{out.name}-contact.png")
    preview_gif(full, rect, out.parent / f"{out.name}-preview.gif")
    timings["previews"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - started
    summary = {"pack": str(out), "contact_sheet": str(out.parent / f"{out.name}-contact.png"),
               "preview": str(out.parent / f"{out.name}-preview.gif"), "frames": len(patches),
               "canvas": [canvas.shape[1], canvas.shape[0]], "patch_xywh": list(patch_xywh),
               "measured_gaze": [round(float(measured[0]), 3), round(float(measured[-1]), 3)],
               "seconds": {k: round(v, 2) for k, v in timings.items()}}
    log(json.dumps(summary, indent=2))
    return summary
