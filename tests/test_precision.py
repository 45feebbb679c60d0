"""[detector] precision: which bundled model (our int8 or MediaPipe's float) each CPU runs.

The rule is checked on recorded /proc/cpuinfo texts of a real Pi 4 and Pi 5 (tests/pi/*.cpuinfo and their
Features lines), the config's errors on bad values, that the float files are the wheel's own bytes and are
checked at load like the int8 ones, that status/doctor say which file and why, and, under the emulated Pi
(qemu-user -cpu cortex-a72 / cortex-a76 with the board's cpuinfo), that the daemon's own detector stack
(make_detector on the default config) takes float for the full range on a Pi 4 and int8 on a Pi 5.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import REPO

from edge.config import ConfigError, config_from_dict
from edge.detector import FLOAT_MODEL_FILES, MODEL_FILES, FaceDetector, default_model_path, describe_models
from edge.errors import ModelError
from edge.precision import choose, cpu_features

PI = REPO / "tests" / "pi"
MODELS = REPO / "assets" / "models"
PI4_FEATURES = "fp asimd evtstrm crc32 cpuid"
PI5_FEATURES = "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"


def cpuinfo(features: str, cores: int = 4) -> str:
    return "\n".join(f"processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: {features}\nCPU implementer\t: 0x41\n"
                     for i in range(cores))


@pytest.mark.parametrize("text", [(PI / "pi4.cpuinfo").read_text(), cpuinfo(PI4_FEATURES)], ids=["recorded", "line"])
def test_a_pi_4_runs_the_full_range_in_float_and_the_short_range_in_int8(text):
    assert "asimddp" not in cpu_features(text) and "asimd" in cpu_features(text)
    full, short = choose("full", machine="aarch64", cpuinfo=text), choose("short", machine="aarch64", cpuinfo=text)
    assert (full.precision, short.precision) == ("float", "int8")
    assert "Cortex-A72" in full.why and "67.6/48.1" in full.why  # the measured figures travel with it


@pytest.mark.parametrize("text", [(PI / "pi5.cpuinfo").read_text(), cpuinfo(PI5_FEATURES)], ids=["recorded", "line"])
def test_a_pi_5_runs_both_ranges_in_int8(text):
    assert "asimddp" in cpu_features(text)
    for detector_range in ("short", "full"):
        choice = choose(detector_range, machine="aarch64", cpuinfo=text)
        assert choice.precision == "int8" and "asimddp" in choice.why and "Cortex-A76" in choice.why


def test_one_core_without_the_dot_product_is_a_cpu_without_it():
    """Features are what every core has: a mixed listing does not promise asimddp to a thread on the other core."""
    mixed = cpuinfo(PI5_FEATURES, 2) + "\n" + cpuinfo(PI4_FEATURES, 1)
    assert choose("full", machine="aarch64", cpuinfo=mixed).precision == "float"


def test_x86_keeps_int8_and_what_cannot_be_read_keeps_int8():
    flags = "processor\t: 0\nflags\t\t: fpu sse sse2 avx fma avx2\n"
    for text in (flags, flags.replace("avx2", "avx2 avx512f avx512_vnni")):
        for detector_range in ("short", "full"):
            assert choose(detector_range, machine="x86_64", cpuinfo=text).precision == "int8"
    assert choose("full", machine="x86_64", cpuinfo=flags).why.startswith("auto: x86-64")
    assert choose("full", machine="aarch64", cpuinfo="").precision == "float"  # Arm, no asimddp listed
    assert choose("full", machine="riscv64", cpuinfo=cpuinfo("rv64imafdc")).precision == "int8"
    assert "not in the measured table" in choose("full", machine="riscv64", cpuinfo="").why


def test_a_fixed_precision_is_taken_as_configured():
    for precision in ("int8", "float"):
        choice = choose("full", precision, machine="aarch64", cpuinfo=cpuinfo(PI5_FEATURES))
        assert choice.precision == precision and choice.why == f'[detector] precision = "{precision}"'
    with pytest.raises(ValueError, match="precision 'fp16': expected one of auto, int8, float"):
        choose("full", "fp16")


@pytest.mark.parametrize("value, shown", [('"fp16"', '"fp16"'), ("8", "8"), ("true", "true"), ('"INT8"', '"INT8"')])
def test_bad_precision_values_are_one_line_errors(value, shown):
    import tomllib

    with pytest.raises(ConfigError) as info:
        config_from_dict(tomllib.loads(f"[detector]\nprecision = {value}"))
    message = str(info.value)
    assert "\n" not in message
    assert f'[detector] precision = {shown}: expected one of "auto", "int8", "float"' in message


def test_the_default_is_auto():
    assert config_from_dict({}).detector.precision == "auto"
    assert config_from_dict({"detector": {"precision": "float"}}).detector.precision == "float"


@pytest.mark.parametrize("detector_range", ["short", "full"])
def test_the_bundled_float_models_are_the_wheels_own_bytes_with_a_record(detector_range, float_models):
    path = default_model_path(detector_range, "float")
    assert path.name == FLOAT_MODEL_FILES[detector_range]
    data = path.read_bytes()
    assert data == Path(float_models[detector_range]).read_bytes()  # copied unmodified
    record = json.loads(path.with_suffix(".json").read_text())
    assert record["sha256"] == hashlib.sha256(data).hexdigest() == record["source"]["sha256"]
    assert record["bytes"] == len(data) and record["source"]["wheel"] == "mediapipe==0.10.14"
    detector = FaceDetector(None, detector_range, precision="float")
    assert not detector.is_quantized and detector.bundled
    assert detector.describe().startswith(f"{path.name} ({detector_range} range, [detector] precision")


def test_a_damaged_bundled_float_model_is_refused_by_its_record(tmp_path, monkeypatch):
    for name in (*MODEL_FILES.values(), *FLOAT_MODEL_FILES.values()):
        for suffix in (".tflite", ".json"):
            shutil.copy(MODELS / Path(name).with_suffix(suffix).name, tmp_path)
    target = tmp_path / FLOAT_MODEL_FILES["full"]
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    monkeypatch.setenv("MONA_EDGE_MODELS", str(tmp_path))
    with pytest.raises(ModelError, match=r"face_detection_full_range_sparse.tflite: sha256 [0-9a-f]{64}, but its "
                                         r"record face_detection_full_range_sparse.json expects 2c3728e6"):
        FaceDetector(None, "full", precision="float")
    (tmp_path / "face_detection_full_range_sparse.json").unlink()
    with pytest.raises(ModelError, match="its record face_detection_full_range_sparse.json is missing"):
        FaceDetector(None, "full", precision="float")
    assert FaceDetector(None, "full", precision="int8").model_path.parent == tmp_path  # the int8 one is intact


def test_a_configured_sha256_is_checked_against_the_chosen_bundled_file():
    int8_sha = json.loads((MODELS / "face_detection_full_range_int8.json").read_text())["sha256"]
    with pytest.raises(ModelError, match=r"but \[detector\] sha256 expects 6b3d49b6"):
        FaceDetector(None, "full", precision="float", sha256=int8_sha)
    assert FaceDetector(None, "full", precision="int8", sha256=int8_sha).is_quantized


def test_status_and_doctor_name_the_files_and_why():
    from edge.commands import _check_model, format_status
    from edge.pipeline import make_detector

    config = config_from_dict({"detector": {"precision": "float"}})
    text = describe_models(make_detector(config))
    assert text == ('whole frame: face_detection_full_range_sparse.tflite (full range, [detector] precision = '
                    '"float"); crops: face_detection_short_range.tflite (short range, [detector] precision = "float")')
    assert f"  model     {text}" in format_status({"model": text})
    check = _check_model(config)
    assert check.ok and "face_detection_full_range_sparse.tflite" in check.detail
    assert 'crops: face_detection_short_range.tflite ([detector] precision = "float")' in check.detail
    auto = _check_model(config_from_dict({}))
    assert auto.ok and f"; {choose('full').why}" in auto.detail


# --- on the emulated Pi's own CPU -----------------------------------------------------------------------------
#: Runs in the Pi's Python: the daemon's detector stack from the default config, as mona-edge run builds it.
GUEST = """
from edge.config import config_from_dict
from edge.detector import describe_models
from edge.pipeline import make_detector
stack = make_detector(config_from_dict({}))
print("whole", stack.whole.model_path.name, stack.whole.is_quantized)
print("crop", stack.crop.model_path.name, stack.crop.is_quantized)
print("why", describe_models(stack))
"""


@pytest.mark.emulated_pi
@pytest.mark.root
@pytest.mark.slow
@pytest.mark.parametrize("board, whole, why", [
    ("pi4", "face_detection_full_range_sparse.tflite", "Cortex-A72"),
    ("pi5", "face_detection_full_range_int8.tflite", "Cortex-A76"),
])
def test_the_daemon_on_an_emulated_pi_takes_what_its_cpu_runs_cheaper(pi_root, board, whole, why):
    env = dict(os.environ, PYTHONPATH=str(REPO), MONA_EDGE_PI_ROOT=str(pi_root), MONA_EDGE_PI_OS="bookworm")
    env.pop("MONA_EDGE_MODELS", None)
    done = subprocess.run([str(PI / "python"), "bookworm", board, "litert", "-c", GUEST], capture_output=True,
                          text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)
    assert lines["whole"] == f"{whole} {whole.endswith('_int8.tflite')}"
    assert lines["crop"] == "face_detection_short_range_int8.tflite True"  # int8 crops on both boards
    assert why in lines["why"] and "auto:" in lines["why"]


@pytest.mark.slow
def test_the_pis_wheel_carries_every_bundled_model_and_its_record(tmp_path):
    """What provisioning sends a Pi (its wheel, installed into /opt/mona-edge) holds both precisions, so
    "auto" finds on a Pi 4 the float file it picks (pyproject's share/mona-edge/models data files), and
    the models' NOTICE."""
    import zipfile

    from provisioning.plan import build_wheel

    wheel = build_wheel(REPO, tmp_path, "pi")
    with zipfile.ZipFile(wheel) as zf:
        names = {n.split(".data/data/", 1)[-1]: n for n in zf.namelist() if ".data/data/share/mona-edge/models/" in n}
        for name in (*MODEL_FILES.values(), *FLOAT_MODEL_FILES.values()):
            for member in (f"share/mona-edge/models/{name}", f"share/mona-edge/models/{Path(name).stem}.json"):
                assert member in names, member
            assert zf.read(names[f"share/mona-edge/models/{name}"]) == (MODELS / name).read_bytes()
        # the models' notice (Apache-2.0: MediaPipe's, and what mona-edge changed) travels with them
        assert zf.read(names["share/mona-edge/models/NOTICE"]) == (MODELS / "NOTICE").read_bytes()


def test_a_pi_4_with_a_damaged_float_file_falls_back_to_the_int8_model(tmp_path, monkeypatch):
    """The daemon's stand-in for a failed model (make_bundled_detector) keeps detecting with int8."""
    from edge.pipeline import make_bundled_detector

    for name in (*MODEL_FILES.values(), *FLOAT_MODEL_FILES.values()):
        for suffix in (".tflite", ".json"):
            shutil.copy(MODELS / Path(name).with_suffix(suffix).name, tmp_path)
    (tmp_path / FLOAT_MODEL_FILES["full"]).write_bytes(b"not a model")
    monkeypatch.setenv("MONA_EDGE_MODELS", str(tmp_path))
    stack = make_bundled_detector(config_from_dict({"detector": {"precision": "float"}}))
    assert stack.whole.model_path == tmp_path / MODEL_FILES["full"] and stack.whole.is_quantized
    assert "the bundled int8 model, because" in stack.whole.choice.why and "11 bytes" in stack.whole.choice.why
    with pytest.raises(ModelError, match="11 bytes"):  # the configured precision's file itself is refused
        FaceDetector(None, "full", precision="float")


def test_quantize_copies_the_float_model_unmodified_with_its_record(tmp_path, float_models):
    from provisioning.quantize_cli import copy_float

    record = copy_float("full", tmp_path, Path(float_models["full"]))
    copied = tmp_path / FLOAT_MODEL_FILES["full"]
    assert copied.read_bytes() == Path(float_models["full"]).read_bytes()
    assert json.loads(copied.with_suffix(".json").read_text()) == record
    assert record["sha256"] == hashlib.sha256(copied.read_bytes()).hexdigest() and record["bytes"] == copied.stat().st_size
