"""``mona-edge detect IMAGE...``: run the Pi's face detector on still images.

The quickest check that a model, a runtime and a camera angle work together: it prints every face with
its eyes, as text or JSON, and can draw them on a copy of the image.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.errors import ExitStatus, ImageError

if TYPE_CHECKING:  # annotations only: registering the command must not import numpy, Pillow or the detector
    import numpy as np
    from PIL import Image

    from edge.detector import FaceDetector
    from edge.faces import Face


def annotate(rgb: np.ndarray, faces: list[Face]) -> Image.Image:
    from PIL import Image, ImageDraw

    img = Image.fromarray(rgb)
    draw = ImageDraw.Draw(img)
    r = max(2, int(round(max(rgb.shape[:2]) / 200)))
    for face in faces:
        draw.rectangle([float(v) for v in face.box], outline=(0, 255, 0), width=max(1, r // 2))
        for i, (x, y) in enumerate(face.keypoints):
            colour = (255, 0, 0) if i < 2 else (255, 255, 0)
            draw.ellipse([x - r, y - r, x + r, y + r], outline=colour, width=max(1, r // 2))
        draw.text((float(face.box[0]), float(face.box[1]) - 12), f"{face.score:.2f}", fill=(0, 255, 0))
    return img


def fit_side(rgb: np.ndarray, max_side: int) -> tuple[np.ndarray, float, float]:
    """``rgb`` shrunk (aspect kept) so that no side exceeds ``max_side``, and the (x, y) factors back.

    The detector letterboxes every image to 128x128 anyway, so a panorama wider than it accepts
    (:data:`edge.detector.MAX_SIDE`) loses nothing by being shrunk first; its faces are then scaled back
    to the file's own pixels. INTER_AREA averages the pixels it drops instead of skipping them.
    """
    h, w = rgb.shape[:2]
    if max(h, w) <= max_side:
        return rgb, 1.0, 1.0
    import cv2

    f = max_side / max(h, w)
    nw, nh = max(1, min(max_side, round(w * f))), max(1, min(max_side, round(h * f)))
    return cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA), w / nw, h / nh


def _scaled(face: Face, sx: float, sy: float) -> Face:
    import numpy as np

    from edge.faces import Face

    if sx == sy == 1.0:
        return face
    scale = np.array([sx, sy], dtype=np.float32)
    return Face(box=face.box * np.tile(scale, 2), keypoints=face.keypoints * scale, score=face.score)


def detect_image(detector: FaceDetector, path: Path, max_side: int | None = None) -> tuple[np.ndarray, list[Face]]:
    """One file's pixels and its faces in those pixels; an unusable file is an :class:`ImageError`.

    ``max_side``: the longest side the detector is given (default :data:`edge.detector.MAX_SIDE`, the
    most it accepts); a longer image is shrunk for it by :func:`fit_side`.
    """
    from edge.detector import MAX_SIDE
    from edge.images import read_rgb

    rgb = read_rgb(path)
    small, sx, sy = fit_side(rgb, MAX_SIDE if max_side is None else max_side)
    return rgb, [_scaled(face, sx, sy) for face in detector.detect(small)]


def _annotate_path(out: Path, image: Path, several: bool) -> Path:
    return out.with_name(f"{out.stem}-{image.stem}{out.suffix or '.png'}") if several else out


def _run(args: argparse.Namespace) -> ExitStatus:
    """One result per image; an unusable image is one error line (stderr, and in the JSON) and the rest
    still run: nothing about one file (its size, its bytes, what kind of file it is) reaches the next."""
    from edge.detector import FaceDetector

    detector = FaceDetector(args.model, args.range, threads=args.threads, min_score=args.min_score)
    results: list[dict[str, Any]] = []
    failed = 0
    for path in args.images:
        try:
            rgb, faces = detect_image(detector, path)
            if args.annotate:
                out = _annotate_path(Path(args.annotate), Path(path), len(args.images) > 1)
                try:
                    annotate(rgb, faces).save(out, format="PNG")
                except OSError as exc:
                    raise ImageError(f"{path}: --annotate {out}: cannot write: {exc.strerror or exc}") from exc
        except ImageError as exc:
            failed += 1
            print(f"mona-edge detect: error: {exc}", file=sys.stderr)
            results.append({"image": str(path), "error": str(exc)})
            continue
        results.append({"image": str(path), "width": rgb.shape[1], "height": rgb.shape[0],
                        "faces": [f.to_dict() for f in faces]})
        if not args.json:
            print(f"{path}: {len(faces)} face(s)")
            for face in faces:
                d = face.to_dict()
                print(f"  score {d['score']:.2f} box {d['box']} right eye {d['right_eye']} left eye {d['left_eye']}")
    if args.json:
        print(json.dumps({"model": str(detector.model_path), "runtime": detector.runtime_name,
                          "results": results}, indent=2))
    return ExitStatus.ERROR if failed else ExitStatus.OK


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("detect", help="find faces in images with the Pi's detector",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("images", nargs="+", type=Path)
    parser.add_argument("--range", choices=["short", "full"], default="full",
                        help="BlazeFace model: full (default, as on the Pi: faces across a room) or short (~2 m)")
    parser.add_argument("--model", type=Path, help="a .tflite model (default: the bundled int8 one)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--min-score", type=float, default=None)
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--annotate", type=Path, help="write the image with faces drawn (PNG)")
    parser.set_defaults(handler=_run)
