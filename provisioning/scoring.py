"""Score a face detector against ground truth: recall and eye-midpoint error on annotated faces.

Why this exists beside the int8-versus-float agreement: what a user of the frame gets is faces found and
an eye midpoint in the right place, measured against the real faces, not against another model. An int8
model may land on slightly different anchors than its float parent and still be exactly as good; this is
the measure that says so. Ground truth comes from :func:`provisioning.calibration.room_scenes` (real
portraits with hand-measured face boxes and eyes, pasted into room-like frames); use a seed the quantizer
did not calibrate on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from provisioning.calibration import PlacedFace, fully_visible

#: A detection belongs to a true face if its box centre is inside the face box and its width is within
#: this factor of the face box's (the hand-measured boxes and BlazeFace's differ in convention, not size).
WIDTH_FACTOR = 2.0


@dataclass
class Score:
    faces: int  # annotated faces
    found: int
    false_positives: int  # detections that belong to no annotated face
    midpoint_errors: np.ndarray  # |found - true| eye midpoint / face width, for faces with annotated eyes

    @property
    def recall(self) -> float:
        return self.found / max(self.faces, 1)

    def summary(self) -> dict:
        e = self.midpoint_errors if self.midpoint_errors.size else np.zeros(1)
        return {"faces": self.faces, "found": self.found, "recall": round(self.recall, 4),
                "false_positives": self.false_positives, "eye_faces": int(self.midpoint_errors.size),
                "midpoint_p50": round(float(np.median(e)), 4), "midpoint_p95": round(float(np.percentile(e, 95)), 4)}


def belongs(face_box: Sequence[float], truth: PlacedFace) -> bool:
    x0, y0, x1, y1 = truth.box
    cx, cy = (face_box[0] + face_box[2]) / 2, (face_box[1] + face_box[3]) / 2
    ratio = (face_box[2] - face_box[0]) / max(x1 - x0, 1e-9)
    return x0 <= cx <= x1 and y0 <= cy <= y1 and 1 / WIDTH_FACTOR <= ratio <= WIDTH_FACTOR


def score(detections: Sequence[list], truths: Sequence[list[PlacedFace]]) -> Score:
    """Score per-frame detections (each list best score first, as ``FaceDetector.detect`` returns them).

    Each fully visible true face is matched to the best-scoring detection that belongs to it (each detection
    used once). A face cut by the frame edge need not be found, and a detection on one is no false
    positive; neither is a second detection on a found face.
    """
    faces = found = false_positives = 0
    errors = []
    for found_faces, truth in zip(detections, truths):
        used = set()
        for face in truth:
            if not fully_visible(face):
                continue
            faces += 1
            match = next((i for i, d in enumerate(found_faces) if i not in used and belongs(d.box, face)), None)
            if match is None:
                continue
            used.add(match)
            found += 1
            if face.eyes is not None:
                got = found_faces[match].keypoints[:2].mean(axis=0)
                errors.append(float(np.linalg.norm(got - face.eyes.mean(axis=0))) / (face.box[2] - face.box[0]))
        false_positives += sum(1 for i, d in enumerate(found_faces)
                               if i not in used and not any(belongs(d.box, t) for t in truth))
    return Score(faces, found, false_positives, np.array(errors))


def int8_beside_float(float_model: Path, detector_range: str, frames: Sequence[np.ndarray],
                      truths: Sequence[list[PlacedFace]]) -> dict:
    """The bundled int8 model and the float model it came from, scored on the same scenes in this process's
    runtime: ``{"float": summary, "int8": summary, "runtime": name}``."""
    from edge.detector import FaceDetector

    out: dict = {}
    for name, path in (("float", float_model), ("int8", None)):
        detector = FaceDetector(path, detector_range)
        out[name] = score([detector.detect(frame) for frame in frames], truths).summary()
        out["runtime"] = detector.runtime_name
    return out
