"""SIGHUP: a new config and pack, loaded completely as a *candidate* before anything switches.

Why: a reload is how a new pack reaches the wall (provisioning switches a symlink, then reloads), and a
broken one must never reach the screen. So the candidate (config, verified pack, and a new detector or
camera only if their settings changed) is built beside the running parts; whatever goes wrong stays with
the candidate, and the running config and pack keep going. Only a whole candidate is switched to, in one
full draw of the new portrait (:meth:`edge.pipeline.Pipeline.switch_to`).

At this boundary a fault in what the user gave us (:class:`edge.errors.MonaEdgeError`, or an OSError
reading their files) is one warning line; anything else is a bug in mona-edge and is logged with its
traceback. Either way the reload is refused and nothing changes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from edge.config import Config, load_config
from edge.errors import MonaEdgeError
from edge.pipeline import Parts, Pipeline, gaze_tracker, make_camera, make_detector, make_pack
from edge.status_api import LoopStats

log = logging.getLogger(__name__)

REFUSED = "reload refused, still running the previous config and pack"


@dataclass(frozen=True, slots=True)
class Candidate:
    """A config and the parts it needs, complete and not yet running."""

    config: Config
    parts: Parts
    new_camera: bool


def load_candidate(path: Path, running: Config, parts: Parts, *, keep_camera: bool) -> Candidate:
    """Read ``path`` and build what differs from ``running``: the pack always (it may have changed on
    disk under the same path), the detector and camera only if their settings changed (a camera the
    daemon was given, ``keep_camera``, is never replaced). The display stays: it opens on restart only."""
    config = load_config(path)
    pack = make_pack(config, parts.display.size)
    detector = parts.detector if config.detector == running.detector else make_detector(config)
    new_camera = not keep_camera and config.camera != running.camera
    camera = make_camera(config) if new_camera else parts.camera
    if config.display != running.display:
        log.warning("reload: display settings change on restart only (systemctl restart mona-edge)")
    return Candidate(config, Parts(camera=camera, detector=detector, pack=pack, display=parts.display,
                                   make_tracker=gaze_tracker(config.gaze)), new_camera)


def reload(path: Path, running: Config, pipeline: Pipeline, stats: LoopStats, *,
           keep_camera: bool) -> Config | None:
    """Load a candidate from ``path`` and switch ``pipeline`` to it. Returns the config now running, or
    None if the reload was refused (the pipeline untouched; the refusal counted in ``stats``)."""
    try:
        candidate = load_candidate(path, running, pipeline.parts, keep_camera=keep_camera)
        pipeline.switch_to(candidate.parts)
    # ValueError: ConfigError and PackError are still ValueErrors while they move to MonaEdgeError.
    except (MonaEdgeError, OSError, ValueError) as exc:
        message = f"{REFUSED}: {exc}"
        log.warning("%s", message)
        stats.error("reload", message)
        return None
    except Exception as exc:
        log.error("%s: a bug in mona-edge", REFUSED, exc_info=True)
        stats.error("reload", f"{REFUSED}: internal error {type(exc).__name__}: {exc} (see the journal)")
        return None
    stats.reloads += 1
    log.info("reloaded %s: pack %s (%d frames)%s", path, candidate.parts.pack.name,
             candidate.parts.pack.frame_count, ", new camera" if candidate.new_camera else "")
    return candidate.config
