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


def _run(args: argparse.Namespace) -> ExitStatus:
    """One result per image; an unreadable image is reported (stderr, and in the JSON) and the rest still run."""
    from edge.detector import MAX_SIDE, FaceDetector
    from edge.images import read_rgb

    detector = FaceDetector(args.model, args.range, threads=args.threads, min_score=args.min_score)
    results: list[dict[str, Any]] = []
    failed = 0
    for path in args.images:
        try:
            rgb = read_rgb(path)
            if max(rgb.shape[:2]) > MAX_SIDE:  # the detector's own limit, said about this file
                raise ImageError(f"{path}: {rgb.shape[1]}x{rgb.shape[0]} is larger than {MAX_SIDE} px on a side")
        except ImageError as exc:
            failed += 1
            print(f"mona-edge detect: error: {exc}", file=sys.stderr)
            results.append({"image": str(path), "error": str(exc)})
            continue
        faces = detector.detect(rgb)
        results.append({"image": str(path), "width": rgb.shape[1], "height": rgb.shape[0],
                        "faces": [f.to_dict() for f in faces]})
        if args.annotate:
            out = Path(args.annotate)
            if len(args.images) > 1:
                out = out.with_name(f"{out.stem}-{Path(path).stem}{out.suffix or '.png'}")
            try:
                annotate(rgb, faces).save(out, format="PNG")
            except OSError as exc:
                raise ImageError(f"--annotate {out}: cannot write: {exc.strerror or exc}") from exc
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
