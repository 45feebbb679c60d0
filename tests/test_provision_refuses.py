"""Provisioning refuses what the frame would refuse, with the daemon's own readers, before anything is
built, sent or written: a card that says "card ready" for such a pack would boot into safe mode."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge.errors import ExitStatus
from edge.install import file_sha256
from provisioning.commands import main as cli

REPO = Path(__file__).resolve().parent.parent
TEST_PACK = REPO / "assets" / "packs" / "test"


def _pack(tmp_path: Path, change) -> Path:
    pack = tmp_path / "pack"
    shutil.copytree(TEST_PACK, pack)
    manifest = json.loads((pack / "manifest.json").read_text())
    change(pack, manifest)
    for name in manifest["files"]:
        manifest["files"][name] = {"sha256": file_sha256(pack / name), "bytes": (pack / name).stat().st_size}
    (pack / "manifest.json").write_text(json.dumps(manifest))
    return pack


def _version_2(pack, manifest):
    manifest["format_version"] = 2


def _rgba_frame(pack, manifest):
    rgb = np.asarray(Image.open(pack / "frames/00.png").convert("RGB"))
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]), "RGBA").save(pack / "frames/00.png")


def _bomb_frame(pack, manifest):
    Image.new("L", (30000, 30000)).save(pack / "frames/00.png", optimize=True)


CASES = {"format_version 2": (_version_2, "format_version"), "an RGBA frame": (_rgba_frame, "frames/00.png"),
         "a decompression-bomb frame": (_bomb_frame, "frames/00.png")}


@pytest.mark.parametrize("case", CASES)
def test_sd_card_refuses_a_pack_the_frame_would_refuse_and_writes_nothing(tmp_path, capsys, case):
    change, named = CASES[case]
    pack = _pack(tmp_path, change)
    boot, root = tmp_path / "boot", tmp_path / "root"
    boot.mkdir(), root.mkdir()
    status = cli(["provision", "--sd", str(boot), str(root), "--pack", str(pack)])
    err = capsys.readouterr().err
    assert status == ExitStatus.PACK, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and named in lines[0] and "Traceback" not in err, err
    assert not any(boot.iterdir()) and not any(root.iterdir())


def test_a_deep_nested_manifest_is_one_line_not_a_traceback(tmp_path, capsys):
    pack = tmp_path / "pack"
    shutil.copytree(TEST_PACK, pack)
    (pack / "manifest.json").write_text("[" * 100_000)
    status = cli(["provision", "--sd", str(tmp_path), str(tmp_path), "--pack", str(pack)])
    err = capsys.readouterr().err
    assert status == ExitStatus.PACK and "manifest.json" in err and "Traceback" not in err, err


def test_a_config_the_frame_would_refuse_is_refused_before_anything_is_built(tmp_path, capsys):
    config = tmp_path / "config.toml"
    config.write_text('[gaze]\nfov_deg = "wide"\n')
    status = cli(["provision", "--sd", str(tmp_path), str(tmp_path), "--config", str(config)])
    err = capsys.readouterr().err
    assert status == ExitStatus.CONFIG and "fov_deg" in err and "Traceback" not in err, err
