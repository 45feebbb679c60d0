"""``mona-edge`` itself: which commands exist where, and how each kind of failure is reported.

The installs are simulated with real package metadata: a temporary ``mona_edge-*.dist-info`` (METADATA
and entry_points.txt) first on ``PYTHONPATH`` shadows the real one for ``importlib.metadata``, exactly as
another installed copy would, and the command runs in a fresh interpreter.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edge import __version__, cli, commands
from edge.errors import ExitStatus

PI_COMMANDS = ("run", "status", "snapshot", "calibrate", "doctor", "detect", "demo")
WORKSTATION_COMMANDS = ("quantize", "build-pack", "provision", "rollback", "logs", "wheelhouse")
MISSING = "mona-edge-test-dependency-that-is-not-installed"

#: Requires-Dist as the real pyproject.toml declares it, plus one dependency that no machine has.
METADATA = f"""\
Metadata-Version: 2.1
Name: mona-edge
Version: {__version__}
Requires-Dist: numpy>=1.23
Requires-Dist: pillow>=9
Provides-Extra: pi
Requires-Dist: pygame>=2.1; extra == "pi"
Provides-Extra: workstation
Requires-Dist: numpy>=1.23; extra == 'workstation'
Requires-Dist: {MISSING}>=1.0; extra == "workstation"
Provides-Extra: tools
Requires-Dist: numpy>=1.23; extra == "tools"
"""

#: The workstation's entry points as pyproject.toml declares them, each with the extra it needs.
WORKSTATION_ENTRY_POINTS = """\
quantize = provisioning.quantize_cli:register [workstation]
build-pack = provisioning.build_pack_cli:register [workstation]
provision = provisioning.commands:register_provision [workstation]
rollback = provisioning.commands:register_rollback [workstation]
logs = provisioning.commands:register_logs [workstation]
wheelhouse = provisioning.wheelhouse:register [workstation]
"""

#: What the group held before the Pi's commands were registered directly: they must not appear twice.
OLD_PI_ENTRY_POINTS = """\
detect = edge.detect_cli:register
ops = edge.commands:register
demo = edge.demo:register
"""


def install(site: Path, entry_points: str, modules: dict[str, str] | None = None) -> Path:
    """A mona-edge "install" in ``site``: its metadata with these entry points, and extra modules."""
    info = site / f"mona_edge-{__version__}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(METADATA)
    (info / "entry_points.txt").write_text(f"[mona_edge.commands]\n{entry_points}" if entry_points else "")
    for name, source in (modules or {}).items():
        (site / f"{name}.py").write_text(textwrap.dedent(source))
    return site


def mona_edge(site: Path, *argv: str) -> subprocess.CompletedProcess:
    """``mona-edge ARGV`` (as the console script calls it) in a fresh interpreter that sees ``site`` first.

    It runs in ``site``: the checkout's own ``mona_edge.egg-info`` (a build leaves one) must not be on the
    path ahead of the simulated install, as the current directory would be.
    """
    env = dict(os.environ, PYTHONPATH=str(site))
    return subprocess.run([sys.executable, "-c", "import sys; from edge.cli import main; sys.exit(main())", *argv],
                          capture_output=True, text=True, env=env, cwd=site, timeout=120)


def listed_commands(help_text: str) -> list[str]:
    """The command names in the help's COMMAND list (each line: four spaces, the name, its help)."""
    names = []
    for line in help_text.splitlines():
        if line.startswith("    ") and not line.startswith("     "):
            names.append(line.split()[0])
    return names


GOOD_MODULE = """\
def register(subparsers):
    p = subparsers.add_parser("good-tool", help="a workstation command that loads")
    p.set_defaults(handler=lambda args: 0)
"""
BROKEN_MODULE = """\
import mona_edge_test_no_such_module  # a workstation dependency that went missing


def register(subparsers):
    raise AssertionError("never reached")
"""


# --- which commands exist ------------------------------------------------------------------------------
def test_pi_install_lists_the_pi_commands_and_no_workstation_command(tmp_path):
    """The Pi's wheel carries no entry points: every Pi command is there, registered directly."""
    site = install(tmp_path / "pi", "")
    done = mona_edge(site, "--help")
    assert done.returncode == 0, done.stderr
    assert listed_commands(done.stdout) == list(PI_COMMANDS)
    assert done.stderr == ""


def test_workstation_commands_whose_extra_is_missing_are_left_out_and_say_so_when_asked(tmp_path):
    site = install(tmp_path / "site", WORKSTATION_ENTRY_POINTS + "good-tool = good_tool:register [tools]\n",
                   {"good_tool": GOOD_MODULE})
    done = mona_edge(site, "--help")
    assert done.returncode == 0, done.stderr
    # The workstation's commands need the missing dependency; good-tool's extra is installed.
    assert listed_commands(done.stdout) == [*PI_COMMANDS, "good-tool"]
    assert "WARNING" not in done.stderr  # not installed is not broken
    # Logging is configured before the parser is built: -v shows why each was left out.
    verbose = mona_edge(site, "-v", "--help")
    assert f"DEBUG edge.cli: command quantize left out: extra [workstation] needs {MISSING}, not installed" \
        in verbose.stderr
    asked = mona_edge(site, "quantize", "--range", "short")
    assert asked.returncode == ExitStatus.USAGE
    assert asked.stderr.splitlines() == [
        "mona-edge quantize: error: not installed here: it needs the workstation extra "
        f"(pip install 'mona-edge[workstation]'; missing {MISSING})"]


def test_a_broken_workstation_module_is_a_warning_and_the_pi_commands_still_work(tmp_path):
    site = install(tmp_path / "site", "broken-tool = broken_tool:register [tools]\ngood-tool = good_tool:register\n",
                   {"broken_tool": BROKEN_MODULE, "good_tool": GOOD_MODULE})
    done = mona_edge(site, "--help")
    assert done.returncode == 0, done.stderr
    assert listed_commands(done.stdout) == [*PI_COMMANDS, "good-tool"]
    warnings = [line for line in done.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1
    assert "broken-tool" in warnings[0] and "module broken_tool" in warnings[0]
    assert "ModuleNotFoundError: No module named 'mona_edge_test_no_such_module'" in warnings[0]
    # The Pi's commands are untouched (and do not even load the workstation's modules).
    run_help = mona_edge(site, "run", "--help")
    assert run_help.returncode == 0 and run_help.stdout.startswith("usage: mona-edge run")
    assert run_help.stderr == ""
    status = mona_edge(site, "status", "--socket", str(tmp_path / "no.sock"))
    assert status.returncode == ExitStatus.NOT_RUNNING and "mona-edge is not running" in status.stderr
    assert mona_edge(site, "good-tool").returncode == 0
    asked = mona_edge(site, "broken-tool")
    assert asked.returncode == ExitStatus.USAGE
    assert asked.stderr.splitlines()[-1].startswith(
        "mona-edge broken-tool: error: could not be loaded from module broken_tool (ModuleNotFoundError")


def test_old_metadata_listing_the_pi_modules_registers_nothing_twice(tmp_path):
    """Until the metadata is rebuilt the group still names edge.commands, edge.detect_cli and edge.demo."""
    site = install(tmp_path / "site", OLD_PI_ENTRY_POINTS)
    done = mona_edge(site, "--help")
    assert done.returncode == 0, done.stderr
    assert listed_commands(done.stdout) == list(PI_COMMANDS) and done.stderr == ""


def test_the_real_install_lists_every_command_once():
    done = subprocess.run([sys.executable, "-m", "edge.cli", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    listed = listed_commands(done.stdout)
    assert listed[:len(PI_COMMANDS)] == list(PI_COMMANDS)
    assert sorted(listed[len(PI_COMMANDS):]) == sorted(WORKSTATION_COMMANDS)


def test_status_imports_neither_opencv_nor_numpy_nor_the_workstation(tmp_path):
    """What ``mona-edge status`` costs on a Pi: the standard library and edge.commands/edge.status."""
    probe = ("import sys; from edge.cli import main; code = main(sys.argv[1:]); "
             "heavy = [m for m in ('cv2', 'numpy', 'PIL', 'edge.demo', 'edge.detector') if m in sys.modules]; "
             "heavy += sorted(m for m in sys.modules if m.startswith('provisioning')); print(heavy, int(code))")
    done = subprocess.run([sys.executable, "-c", probe, "status", "--socket", str(tmp_path / "none.sock")],
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == f"[] {int(ExitStatus.NOT_RUNNING)}", done.stderr


def test_a_pi_module_that_cannot_be_imported_is_a_bug_not_a_missing_command(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "edge.demo", None)  # importing it now raises ImportError
    assert cli.main(["--help"]) == ExitStatus.BUG
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "edge.demo" in err
    assert f"This is a bug in mona-edge {__version__}" in err and "invalid choice" not in err
    # A command whose module is fine does not depend on it.
    with pytest.raises(SystemExit) as done:
        cli.main(["run", "--help"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("usage: mona-edge run")


# --- the error model --------------------------------------------------------------------------------------
def test_a_user_error_is_one_line_and_its_exit_status_with_the_traceback_only_under_v(tmp_path, capsys):
    missing = tmp_path / "nowhere.toml"
    assert cli.main(["status", "--config", str(missing)]) == ExitStatus.CONFIG
    assert capsys.readouterr().err.splitlines() == [f"mona-edge status: error: {missing}: no such config file"]
    assert cli.main(["-v", "status", "--config", str(missing)]) == ExitStatus.CONFIG
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last)") and "edge.errors.ConfigError" in err
    assert err.splitlines()[-1] == f"mona-edge status: error: {missing}: no such config file"


def test_a_bare_value_error_in_a_handler_is_reported_as_a_bug_with_its_traceback(monkeypatch, capsys):
    def numpy_bug(*args, **kwargs):
        raise ValueError("operands could not be broadcast together with shapes (3,) (4,)")

    monkeypatch.setattr(commands, "query_status", numpy_bug)
    assert cli.main(["status", "--socket", "/nonexistent.sock"]) == ExitStatus.BUG
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "in numpy_bug" in err
    assert ("mona-edge status: internal error: ValueError: operands could not be broadcast together with shapes "
            "(3,) (4,)") in err
    assert f"This is a bug in mona-edge {__version__}, not a fault in your setup. Please report it" in err
    assert "mona-edge status: error:" not in err  # never dressed up as the user's fault


def test_ctrl_c_is_130_and_usage_errors_stay_2(monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(commands, "query_status", interrupted)
    assert cli.main(["status", "--socket", "/nonexistent.sock"]) == ExitStatus.INTERRUPTED == 130
    with pytest.raises(SystemExit) as usage:
        cli.main(["status", "--no-such-option"])
    assert usage.value.code == ExitStatus.USAGE == 2
    assert "unrecognized arguments: --no-such-option" in capsys.readouterr().err
    assert cli.main([]) == ExitStatus.USAGE  # no command: the help, on stdout
    assert "COMMAND" in capsys.readouterr().out


def test_every_exit_status_of_a_handler_is_passed_on(monkeypatch, capsys):
    """Handlers return an ExitStatus; ``python -m edge.commands`` is the same CLI (the daemon test runs it)."""
    assert commands.main(["status", "--socket", "/nonexistent.sock"]) == ExitStatus.NOT_RUNNING
    assert "mona-edge is not running" in capsys.readouterr().err
