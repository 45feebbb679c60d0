"""What reaches ``ssh``: a checked user and host, ``--`` before the destination, paths ssh cannot misread.

``ssh`` takes any argument starting with ``-`` for an option, wherever it stands: a target user of
``-oProxyCommand=...`` would be a command run on the workstation. These tests run the real OpenSSH client
against the real loopback sshd (tests/sshd_fixture.py) and record, with a wrapper that then runs the real
program, every argv provisioning gives it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from sshd_fixture import sshd  # noqa: F401  (the fixture)

from edge.errors import ExitStatus, ProvisioningError
from provisioning import commands
from provisioning.remote import SshTarget, parse_destination
from provisioning.target import HOST_RULE, USER_RULE, Destination
from provisioning.target import parse_destination as parse_checked

SEP = "\x1f"  # between the recorded arguments of one call (none of ours contains it)


@pytest.mark.parametrize("text, expected", [
    ("pi@frame.local", ("pi", "frame.local", 22)),
    ("pi@frame.local:2222", ("pi", "frame.local", 2222)),
    ("Pi@Frame-2.Example.ORG.", ("Pi", "Frame-2.Example.ORG.", 22)),
    ("_svc.user-1@frame", ("_svc.user-1", "frame", 22)),
    ("pi@192.168.1.20", ("pi", "192.168.1.20", 22)),
    ("pi@192.168.1.20:22", ("pi", "192.168.1.20", 22)),
    ("pi@[::1]", ("pi", "::1", 22)),
    ("pi@[fe80::1%eth0]:2222", ("pi", "fe80::1%eth0", 2222)),
    ("pi@fe80::dead:beef", ("pi", "fe80::dead:beef", 22)),
    ("pi@4frames.local", ("pi", "4frames.local", 22)),
])
def test_names_and_addresses_a_pi_can_have_are_taken(text, expected):
    assert parse_destination(text) == expected
    assert parse_checked(text) == Destination(*expected)


@pytest.mark.parametrize("text, message", [
    ("-oProxyCommand=touch /tmp/owned@frame.local",
     f"target user '-oProxyCommand=touch /tmp/owned': not a login name; allowed: {USER_RULE}"),
    ("pi@-oProxyCommand=touch /tmp/owned",
     f"target host '-oProxyCommand=touch /tmp/owned': not a host name or address; allowed: {HOST_RULE}"),
    ("pi@-frame.local", f"target host '-frame.local': not a host name or address; allowed: {HOST_RULE}"),
    ("-p@frame.local", f"target user '-p': not a login name; allowed: {USER_RULE}"),
    ("pi pi@frame.local", f"target user 'pi pi': not a login name; allowed: {USER_RULE}"),
    ("a@b@frame.local", f"target user 'a@b': not a login name; allowed: {USER_RULE}"),
    ("1pi@frame.local", f"target user '1pi': not a login name; allowed: {USER_RULE}"),
    (f"{'u' * 33}@frame.local", f"target user '{'u' * 33}': not a login name; allowed: {USER_RULE}"),
    ("pi@frame..local", f"target host 'frame..local': not a host name or address; allowed: {HOST_RULE}"),
    ("pi@frame_1.local", f"target host 'frame_1.local': not a host name or address; allowed: {HOST_RULE}"),
    ("pi@frame-.local", f"target host 'frame-.local': not a host name or address; allowed: {HOST_RULE}"),
    (f"pi@{'a' * 64}.local", f"target host '{'a' * 64}.local': not a host name or address; allowed: {HOST_RULE}"),
    ("pi@192.168.1", f"target host '192.168.1': not a host name or address; allowed: {HOST_RULE}"),
    ("pi@999.1.1.1", f"target host '999.1.1.1': not a host name or address; allowed: {HOST_RULE}"),
    ("pi@frame;reboot", f"target host 'frame;reboot': not a host name or address; allowed: {HOST_RULE}"),
    ("pi@[-oProxyCommand=x]:22", "target host '-oProxyCommand=x': not an IPv6 address; allowed in brackets: "
                                 "an IPv6 address such as [fe80::1%eth0]"),
    ("pi@[fe80::1%-oX]", "target host 'fe80::1%-oX': not an IPv6 address; allowed in brackets: an IPv6 "
                         "address such as [fe80::1%eth0]"),
    ("pi@[::1]x", "target 'pi@[::1]x': expected user@[IPv6] or user@[IPv6]:port"),
    ("pi@frame.local:0", "target 'pi@frame.local:0': port '0' is not a port number; allowed: 1-65535"),
    ("pi@frame.local:65536", "target 'pi@frame.local:65536': port '65536' is not a port number; allowed: 1-65535"),
    ("pi@frame.local:-1", "target 'pi@frame.local:-1': port '-1' is not a port number; allowed: 1-65535"),
    ("frame.local", "target 'frame.local': expected user@host or user@host:port"),
])
def test_anything_ssh_could_take_for_an_option_or_another_host_is_one_line(text, message):
    with pytest.raises(ProvisioningError) as caught:
        parse_destination(text)
    assert str(caught.value) == message


@pytest.mark.parametrize("user, host, port", [("-oProxyCommand=touch x", "frame.local", 22),
                                              ("pi", "-oProxyCommand=touch x", 22), ("pi", "frame", 0)])
def test_a_target_built_in_code_is_checked_too(user, host, port):
    with pytest.raises(ProvisioningError, match=r"^target (user|host|port) "):
        SshTarget(user, host, port)


def _recorder(folder: Path, program: str) -> Path:
    """A wrapper that appends its argv to ``folder/calls`` and then runs the real ``program``."""
    real = shutil.which(program)
    assert real, f"{program} is not installed"
    wrapper = folder / program
    wrapper.write_text("#!/bin/sh\n"
                       f"printf '%s{SEP}' \"$0\" \"$@\" >> '{folder / 'calls'}'\n"
                       f"printf '\\n' >> '{folder / 'calls'}'\n"
                       f'exec {real} "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def _calls(folder: Path) -> list[list[str]]:
    path = folder / "calls"
    if not path.exists():
        return []
    return [line.split(SEP)[:-1] for line in path.read_text().splitlines()]


@pytest.mark.parametrize("extra", [[], ["--accept-host-key", "SHA256:AAAA"]])
def test_a_proxycommand_user_is_refused_before_any_ssh_program_runs(extra, tmp_path, monkeypatch, capsys):
    for program in ("ssh", "ssh-keyscan", "ssh-keygen"):
        _recorder(tmp_path, program)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    owned = tmp_path / "owned"
    hostile = f"-oProxyCommand=touch {owned}@frame.local"
    code = commands.main(["rollback", *extra, "--known-hosts", str(tmp_path / "kh"), "--", hostile])
    assert code == ExitStatus.PROVISIONING
    assert capsys.readouterr().err.splitlines() == [
        f"mona-edge rollback: error: target user '-oProxyCommand=touch {owned}': not a login name; "
        f"allowed: {USER_RULE}"]
    assert _calls(tmp_path) == [] and list(tmp_path.glob("owned*")) == []


def test_every_ssh_call_ends_its_options_before_the_destination(sshd, tmp_path, monkeypatch):  # noqa: F811
    """A real session (master connection, a command, the helper, an upload, a host-key scan, close):
    in every argv the destination comes right after ``--`` and nowhere before it."""
    ssh = _recorder(tmp_path, "ssh")
    _recorder(tmp_path, "ssh-keyscan")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    payload = tmp_path / "hello.txt"
    payload.write_text("hello\n")
    dest = tmp_path / "received"
    with SshTarget(sshd.user, sshd.host, sshd.port, known_hosts=sshd.known_hosts, identity=sshd.identity,
                   ssh_program=str(ssh)) as target:
        assert target.run(["true"]).returncode == 0
        assert target.helper("probe", {"prefix": str(tmp_path / "unused")})["python"]
        target.upload([(payload, "hello.txt")], str(dest))
        (fingerprint, _), *_ = target.scan_host_keys()
    assert (dest / "hello.txt").read_text() == "hello\n"
    assert fingerprint.endswith(sshd.fingerprint())
    calls = _calls(tmp_path)
    ssh_calls = [argv for argv in calls if argv[0].endswith("/ssh")]
    assert len(ssh_calls) >= 5  # open, run, helper, upload, close
    for argv in ssh_calls:
        cut = argv.index("--")
        assert argv[cut + 1] == f"{sshd.user}@{sshd.host}", argv
        assert f"{sshd.user}@{sshd.host}" not in argv[:cut]
    (scan,) = [argv for argv in calls if argv[0].endswith("/ssh-keyscan")]
    assert scan[-2:] == ["--", sshd.host]


def test_key_and_known_hosts_paths_with_spaces_and_percent_signs_reach_ssh_intact(sshd, tmp_path):  # noqa: F811
    """ssh splits UserKnownHostsFile at spaces and expands %-tokens in every path: both must be escaped."""
    odd = tmp_path / "keys 100% mine %h"
    odd.mkdir()
    known = odd / "known hosts"
    identity = odd / "id %d"
    shutil.copy(sshd.known_hosts, known)
    shutil.copy(sshd.identity, identity)
    identity.chmod(0o600)
    with SshTarget(sshd.user, sshd.host, sshd.port, known_hosts=known, identity=identity) as target:
        done = target.run(["echo", "reached"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().strip() == "reached"


def test_a_path_ssh_cannot_take_is_one_line(tmp_path):
    target = SshTarget("pi", "frame.local", known_hosts=tmp_path / 'say "hi"')
    with pytest.raises(ProvisioningError, match=r"^--known-hosts .*: a path with a double quote or a line break"):
        target.run(["true"])


def test_old_style_arguments_would_have_let_ssh_run_the_users_proxycommand(tmp_path):
    """Why the checks: the argv provisioning used to build (options, user@host, --, command) hands a user
    of ``-oProxyCommand=...`` to ssh as an option, and ssh runs it, with no network involved at all
    (the ProxyCommand here is ``touch .../owned@frame.invalid``: the rest of the "user@host")."""
    owned = tmp_path / "owned"
    user = f"-oProxyCommand=touch {owned}"
    subprocess.run(["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=2", f"{user}@frame.invalid", "--", "true"],
                   capture_output=True, timeout=30)
    assert [p.name for p in tmp_path.glob("owned*")] == ["owned@frame.invalid"]
    (tmp_path / "owned@frame.invalid").unlink()
    with pytest.raises(ProvisioningError):
        SshTarget(user, "frame.invalid").run(["true"])
    assert list(tmp_path.glob("owned*")) == []


def test_a_command_opens_one_master_connection(sshd, tmp_path, monkeypatch):  # noqa: F811
    """open_target then ``with``: one master (``ControlMaster=yes``), not two; a second ``open`` of an open
    target starts nothing (a second master stayed behind for ControlPersist, 5 minutes)."""
    import argparse

    ssh = _recorder(tmp_path, "ssh")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    args = argparse.Namespace(destination=f"{sshd.user}@{sshd.host}:{sshd.port}", known_hosts=sshd.known_hosts,
                              identity=sshd.identity, accept_host_key=None)
    with commands.open_target(args) as target:
        target.open()
        assert target.run(["true"]).returncode == 0
    masters = [argv for argv in _calls(tmp_path) if argv[0] == str(ssh) and "ControlMaster=yes" in argv]
    assert len(masters) == 1, masters
