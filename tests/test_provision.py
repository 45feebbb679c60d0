"""``mona-edge provision`` against a real OpenSSH server on loopback, into an unprivileged target prefix.

The bench, honestly stated: the target is this machine, so the Pi-side venv is built from this
machine's ``/usr/bin/python3`` with ``--system-site-packages`` and only the project wheel is installed
(``--no-deps``); the service runs under the plain-process supervisor (no systemd as PID 1 here), and the
unit's ExecStart is a small stand-in daemon run by the *installed* venv's Python: it imports the installed
``edge`` package, loads the pack the ``current`` link points at, refuses a pack marked broken, and writes
the status JSON (``state``: READY) that the ready command reads. The stand-in makes the fault tests
(dropped copies, corrupted links, a pack that never gets ready) fast and exact; the real path (the real
wheel with an offline wheelhouse, real packs, ``mona-edge run`` and ``status``) is
``tests/test_provision_real.py``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sshd_fixture import sshd  # noqa: F401  (the fixture)

import edge.install
from edge.errors import ExitStatus, ProvisioningError
from provisioning import flash
from provisioning.commands import main as cli
from provisioning.plan import REPO, Artifacts, build_wheel, load_pack, load_software, load_unit
from provisioning.remote import HostKeyError, RemoteError, SshTarget, TransferError
from provisioning.sdcard import check_card, write_card

DAEMON = r'''
import json, os, signal, sys, time
prefix, status_path = sys.argv[1], sys.argv[2]

def write(state, **extra):
    with open(status_path + ".tmp", "w") as fh:
        json.dump(dict(state=state, pid=os.getpid(), **extra), fh)
    os.replace(status_path + ".tmp", status_path)

import edge  # the installed wheel, from the venv this runs in
pack = os.path.realpath(os.path.join(prefix, "var/lib/mona-edge/packs/current"))
software = os.path.realpath(os.path.join(prefix, "opt/mona-edge/current"))
print("daemon starting: pack", os.path.basename(pack)[:12], flush=True)
with open(os.path.join(pack, "manifest.json")) as fh:
    manifest = json.load(fh)
if manifest.get("broken"):
    print("pack refused: marked broken", flush=True)
    write("FAILED")
    sys.exit(1)
signal.signal(signal.SIGTERM, lambda *a: (write("STOPPED"), sys.exit(0)))
write("READY", pack=os.path.basename(pack), software=os.path.basename(software), edge=os.path.realpath(edge.__file__))
while True:
    time.sleep(1)
'''


@pytest.fixture(scope="session")
def bench(tmp_path_factory):
    """The project wheel (built once) and the stand-in daemon."""
    root = tmp_path_factory.mktemp("bench")
    wheel = build_wheel(REPO, root / "wheels")
    daemon = root / "daemon.py"
    daemon.write_text(DAEMON)
    return {"wheel": wheel, "daemon": daemon, "root": root}


def make_pack(folder: Path, seed: str, big: int = 4096, frame: int = 3000, broken: bool = False) -> Path:
    """A gaze-pack-shaped folder: a base image, frames, a manifest with per-file sha256."""
    folder.mkdir(parents=True)
    blobs = {"base.bin": big, "frames/00.bin": frame, "frames/01.bin": frame, "frames/02.bin": frame}
    files = {}
    for rel, size in blobs.items():
        data = b"".join(hashlib.sha256(f"{seed}{rel}{i}".encode()).digest() for i in range(size // 32 + 1))[:size]
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
        files[rel] = hashlib.sha256(data).hexdigest()
    manifest = {"format": 1, "name": seed, "frames": 3, "files": files}
    if broken:
        manifest["broken"] = True
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


class Target:
    """One unprivileged target prefix on the loopback sshd, and how to provision it."""

    def __init__(self, server, bench, prefix: Path):
        self.server, self.bench, self.prefix = server, bench, prefix
        self.status_file = prefix / "status.json"
        self.unit_file = prefix.parent / f"{prefix.name}-unit.service"
        real = (REPO / "systemd/mona-edge.service").read_text()
        exec_start = f"ExecStart=/opt/mona-edge/current/bin/python {bench['daemon']} {prefix} {self.status_file}"
        self.unit_file.write_text("\n".join(exec_start if line.startswith("ExecStart=") else line
                                            for line in real.splitlines()) + "\n")
        self.ready = ["cat", str(self.status_file)]

    def ssh(self, ssh_program: str = "ssh", known_hosts: Path = None) -> SshTarget:
        return SshTarget(self.server.user, self.server.host, self.server.port,
                         known_hosts=known_hosts or self.server.known_hosts, identity=self.server.identity,
                         ssh_program=ssh_program)

    def artifacts(self, pack: Path = None, config: bytes = None) -> Artifacts:
        from provisioning.plan import Blob
        return Artifacts(software=load_software(self.bench["wheel"], no_deps=True),
                         unit=load_unit(self.unit_file, str(self.prefix)),
                         pack=load_pack(pack) if pack else None,
                         config=Blob("test", config) if config is not None else None)

    def deploy(self, pack: Path = None, ssh_program: str = "ssh", config: bytes = None, messages=None):
        options = flash.ProvisionOptions(prefix=str(self.prefix), service_manager="process",
                                         ready_command=self.ready, ready_timeout=20)
        with self.ssh(ssh_program) as target:
            return flash.provision(target, self.artifacts(pack, config), options,
                                   say=(messages.append if messages is not None else lambda _m: None))

    def status(self) -> dict:
        return json.loads(self.status_file.read_text())

    def link(self, rel: str) -> str:
        return Path(os.readlink(self.prefix / rel)).name

    def cli_args(self) -> list:
        return [self.server.destination, "--known-hosts", str(self.server.known_hosts),
                "-i", str(self.server.identity), "--prefix", str(self.prefix), "--service-manager", "process"]


@pytest.fixture
def target(sshd, bench, tmp_path):  # noqa: F811
    t = Target(sshd, bench, tmp_path / "target")
    t.prefix.mkdir()
    yield t
    edge.install.stop({"prefix": str(t.prefix), "service_manager": "process"})


def fault_ssh(folder: Path, filter_command: str) -> str:
    """An ``ssh`` whose file uploads (the ``tar -x`` stream) pass through ``filter_command`` first:
    ``head -c N`` is a connection dropped after N bytes, a byte flip is a corrupting link."""
    wrapper = folder / "ssh-fault"
    wrapper.write_text("#!/bin/sh\n"
                       'case "$*" in\n'
                       f'  *"tar -x"*) {filter_command} | exec ssh "$@" ;;\n'
                       '  *) exec ssh "$@" ;;\n'
                       "esac\n")
    wrapper.chmod(0o755)
    return str(wrapper)


# ---------------------------------------------------------------------------------------------- tests

def test_fresh_install_then_second_run_sends_and_restarts_nothing(target, tmp_path):
    pack = make_pack(tmp_path / "pack-a", "a")
    first = target.deploy(pack, config=b"[display]\nrotate = 90\n")
    status = target.status()
    assert status["state"] == "READY"
    software = target.artifacts(pack).software.hash
    pack_sha = load_pack(pack).sha
    assert status["software"] == software and status["pack"] == pack_sha
    assert status["edge"].startswith(str(target.prefix / "opt/mona-edge/versions" / software))
    assert target.link("opt/mona-edge/current") == software
    assert target.link("var/lib/mona-edge/packs/current") == pack_sha
    assert (target.prefix / "etc/mona-edge/config.toml").read_bytes() == b"[display]\nrotate = 90\n"
    assert "ExecStart=" + str(target.prefix / "opt/mona-edge/current/bin/python") in \
        (target.prefix / "etc/systemd/system/mona-edge.service").read_text()
    assert sorted(first.changed) == ["config", "pack", "software", "unit"] and first.restarted
    sent = {name for name, _ in first.transfer.files}
    assert any(name.endswith(".whl") for name in sent) and any(name.endswith("base.bin") for name in sent)
    assert first.transfer.bytes > 0

    messages = []
    second = target.deploy(pack, config=b"[display]\nrotate = 90\n", messages=messages)
    assert second.transfer.files == [] and second.transfer.bytes == 0
    assert not second.restarted and second.plan.nothing_to_do
    assert target.status()["pid"] == status["pid"]  # the same process: nothing restarted
    assert any("nothing sent, nothing restarted" in m for m in messages)


def test_pack_update_sends_only_the_pack_then_rollback_restores_it(target, tmp_path, capfd):
    pack_a, pack_b = make_pack(tmp_path / "a", "a"), make_pack(tmp_path / "b", "b")
    target.deploy(pack_a)
    sha_a, sha_b = load_pack(pack_a).sha, load_pack(pack_b).sha
    update = target.deploy(pack_b)
    assert update.changed == ["pack"]
    assert all("/packs/" in name and not name.endswith(".whl") for name, _ in update.transfer.files)
    assert target.status()["pack"] == sha_b
    assert (target.prefix / "var/lib/mona-edge/packs" / sha_a).is_dir()  # kept for rollback

    ready = ["--ready-command", f"cat {target.status_file}"]
    assert cli(["rollback", *target.cli_args(), *ready]) == 0
    assert "rolled back (pack)" in capfd.readouterr().out
    assert target.status()["pack"] == sha_a and target.link("var/lib/mona-edge/packs/current") == sha_a
    deploy = json.loads((target.prefix / "var/lib/mona-edge/deploy.json").read_text())
    assert deploy["current"]["pack"] == sha_a and deploy["previous"]["pack"] == sha_b

    assert cli(["logs", *target.cli_args(), "-n", "3"]) == 0
    out = capfd.readouterr().out.splitlines()  # the remote tail writes to this process's stdout
    assert len(out) == 3 and out[-1] == f"daemon starting: pack {sha_a[:12]}"


def test_copy_dropped_half_way_keeps_the_old_version_and_the_next_run_completes(target, tmp_path):
    pack_a = make_pack(tmp_path / "a", "a")
    pack_b = make_pack(tmp_path / "b", "b", big=150_000, frame=150_000)
    target.deploy(pack_a)
    before = target.status()
    dropped = fault_ssh(tmp_path, "head -c 380000")  # base.bin and frames/00.bin arrive, frames/01.bin half
    with pytest.raises(TransferError, match=r"broke off at frames/0[12]\.bin .*still runs its previous version"):
        target.deploy(pack_b, ssh_program=dropped)
    assert target.status() == before  # same process, same pack
    assert target.link("var/lib/mona-edge/packs/current") == load_pack(pack_a).sha
    staged = target.prefix / "var/lib/mona-edge/packs" / f".staging-{load_pack(pack_b).sha}"
    assert 0 < (staged / "frames/01.bin").stat().st_size < 150_000  # really half a file on the target

    resumed = target.deploy(pack_b)
    assert target.status()["pack"] == load_pack(pack_b).sha
    sent = sorted(Path(name).relative_to(staged).as_posix() for name, _ in resumed.transfer.files)
    assert sent == ["frames/01.bin", "frames/02.bin", "manifest.json"]  # only what had not arrived intact


def test_a_broken_off_upload_is_cleared_once_another_deployment_succeeds(target, tmp_path):
    pack_a = make_pack(tmp_path / "a", "a")
    pack_b = make_pack(tmp_path / "b", "b", big=150_000, frame=150_000)
    target.deploy(pack_a)
    with pytest.raises(TransferError):
        target.deploy(pack_b, ssh_program=fault_ssh(tmp_path, "head -c 380000"))
    packs = target.prefix / "var/lib/mona-edge/packs"
    assert (packs / f".staging-{load_pack(pack_b).sha}").is_dir()  # kept for a resumed retry
    target.deploy(make_pack(tmp_path / "c", "c"))
    assert not [p.name for p in packs.iterdir() if p.name.startswith(".")]  # the user moved on: space back


def test_corrupted_transfer_is_refused_by_checksum_and_the_old_version_keeps_running(target, tmp_path):
    pack_a, pack_b = make_pack(tmp_path / "a", "a"), make_pack(tmp_path / "b", "b", big=50_000)
    target.deploy(pack_a)
    before = target.status()
    flip = "python3 -c 'import sys; d = bytearray(sys.stdin.buffer.read()); d[20000] ^= 1; sys.stdout.buffer.write(d)'"
    with pytest.raises(RemoteError, match=r"verify pack failed: .*base\.bin: checksum mismatch"):
        target.deploy(pack_b, ssh_program=fault_ssh(tmp_path, flip))
    assert target.status() == before


def test_a_tampered_pack_is_refused_before_anything_is_sent(tmp_path):
    pack = make_pack(tmp_path / "a", "a")
    (pack / "frames/01.bin").write_bytes(b"not the frame the manifest describes")
    with pytest.raises(ProvisioningError, match=r"frames/01\.bin: checksum mismatch with manifest\.json"):
        load_pack(pack)


def test_a_new_version_that_never_gets_ready_is_switched_back(target, tmp_path):
    pack_a = make_pack(tmp_path / "a", "a")
    target.deploy(pack_a)
    with pytest.raises(RemoteError, match=r"(?s)wait for READY failed: the service stopped.*pack refused.*"
                                          r"switched back to the previous deployment; it is READY"):
        target.deploy(make_pack(tmp_path / "bad", "bad", broken=True))
    assert target.status()["state"] == "READY" and target.status()["pack"] == load_pack(pack_a).sha
    assert target.link("var/lib/mona-edge/packs/current") == load_pack(pack_a).sha


def test_unknown_and_changed_host_keys_stop_the_run_with_the_fingerprint(target, sshd, tmp_path):  # noqa: F811
    fingerprint = sshd.fingerprint()
    fp = re.escape(fingerprint)
    unknown = tmp_path / "empty_known_hosts"
    with pytest.raises(HostKeyError, match=rf"not in .*presents ED25519 {fp}.*--accept-host-key {fp}"):
        target.ssh(known_hosts=unknown).open()

    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    changed = tmp_path / "changed_known_hosts"
    kind, key = (tmp_path / "other.pub").read_text().split()[:2]
    changed.write_text(f"[127.0.0.1]:{sshd.port} {kind} {key}\n")
    with pytest.raises(HostKeyError, match=rf"CHANGED.*presents ED25519 {fp}"):
        target.ssh(known_hosts=changed).open()

    with pytest.raises(HostKeyError, match="does not present that key"):
        target.ssh(known_hosts=changed).accept_host_key("SHA256:" + "A" * 43)
    assert key in changed.read_text()  # nothing recorded on a wrong fingerprint
    accepting = target.ssh(known_hosts=changed)
    accepting.accept_host_key(fingerprint)
    with accepting:
        assert accepting.run(["true"]).returncode == 0
    assert key not in changed.read_text()


def test_dry_run_prints_the_plan_and_changes_nothing(target, bench, tmp_path, capsys):
    pack = REPO / "assets/packs/test"  # the command judges it with the daemon's reader: a real pack
    argv = ["provision", *target.cli_args(), "--wheel", str(bench["wheel"]), "--no-deps", "--pack", str(pack),
            "--unit", str(target.unit_file), "--ready-command", f"cat {target.status_file}", "--dry-run"]
    assert cli(argv) == 0
    out = capsys.readouterr().out
    assert "change: software" in out and "change: pack" in out and "sent 0 file(s), 0 bytes" in out
    assert not (target.prefix / "opt").exists()
    assert cli(argv[:-1]) == 0
    assert target.status()["state"] == "READY"


def test_sd_card_is_staged_and_first_boot_finishes_the_install(bench, tmp_path):
    boot, root = tmp_path / "bootfs", tmp_path / "rootfs"
    boot.mkdir()
    (boot / "cmdline.txt").write_text("console=serial0,115200 console=tty1 root=PARTUUID=6c586e13-02 "
                                      "rootfstype=ext4 fsck.repair=yes rootwait\n")
    (boot / "config.txt").write_text("dtoverlay=vc4-kms-v3d\ncamera_auto_detect=1\n")
    for folder in ("etc/systemd/system", "usr/bin", "opt"):
        (root / folder).mkdir(parents=True)
    (root / "etc/os-release").write_text('ID=debian\nVERSION_CODENAME=bookworm\n')
    with pytest.raises(ProvisioningError, match="no cmdline.txt"):
        check_card(root, root)  # the root partition is not a boot partition
    pack = make_pack(tmp_path / "pack", "a")
    # The unit is rendered for the card's mount point only because this bench boots it from there.
    bench_target = Target(None, bench, root)
    artifacts = bench_target.artifacts(pack)
    for _ in range(2):  # writing twice changes nothing more
        write_card(boot, root, artifacts)
    cmdline = (boot / "cmdline.txt").read_text()
    assert cmdline.count("\n") == 1 and cmdline.split().count("consoleblank=0") == 1
    assert (boot / "ssh").exists()
    wants = root / "etc/systemd/system/multi-user.target.wants/mona-edge-firstboot.service"
    assert os.readlink(wants) == "/etc/systemd/system/mona-edge-firstboot.service"
    assert (root / "etc/systemd/system/mona-edge-firstboot.service").read_bytes() == \
        (REPO / "systemd/mona-edge-firstboot.service").read_bytes()
    plan_file = root / "opt/mona-edge/firstboot/plan.json"
    assert json.loads(plan_file.read_text())["software"]["offline"] is False

    # First power-up, as the first-boot unit runs it (here under the mount point, with the supervisor).
    args = {"prefix": str(root), "service_manager": "process", "ready_command": bench_target.ready}
    try:
        done = subprocess.run(["/usr/bin/python3", str(root / "opt/mona-edge/firstboot/install.py"), "firstboot",
                               base64.b64encode(json.dumps(args).encode()).decode()],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        assert json.loads(done.stdout)["status"]["state"] == "READY"
        assert bench_target.status()["pack"] == load_pack(pack).sha
        assert not plan_file.exists() and (root / "opt/mona-edge/firstboot/plan.done.json").exists()
    finally:
        edge.install.stop({"prefix": str(root), "service_manager": "process"})


def test_a_bad_destination_is_one_line_and_the_provisioning_exit_status(capsys):
    assert cli(["rollback", "frame.local"]) == ExitStatus.PROVISIONING
    assert capsys.readouterr().err.splitlines() == [
        "mona-edge rollback: error: target 'frame.local': expected user@host or user@host:port"]
    assert cli(["logs", "pi@frame.local:http"]) == ExitStatus.PROVISIONING
    assert "port 'http' is not a port number" in capsys.readouterr().err


def test_python_m_entry_point_shows_the_three_commands():
    done = subprocess.run([sys.executable, "-m", "provisioning.commands", "--help"], capture_output=True,
                          text=True, cwd=REPO)
    assert done.returncode == 0 and all(c in done.stdout for c in ("provision", "rollback", "logs"))


def test_ready_is_the_new_process_not_the_one_a_restart_replaces(tmp_path):
    """systemd queues the restart (--no-block), so for a moment the old daemon still answers READY: that
    answer must not count, or a rollback reports READY for a frame that then fails (seen in CI)."""
    from edge.install import Layout, wait_ready

    calls = tmp_path / "calls"
    answer = ("import json, pathlib, sys\n"
              f"calls = pathlib.Path({str(calls)!r})\n"
              "n = int(calls.read_text()) if calls.exists() else 0\n"
              "calls.write_text(str(n + 1))\n"
              "print(json.dumps({'state': 'READY', 'pid': 100 if n < 3 else 200}))\n")

    class Alive:
        def dead(self) -> bool:
            return False

    status = wait_ready(Layout(str(tmp_path)), Alive(), [sys.executable, "-c", answer], 30, not_pid=100)
    assert status["pid"] == 200 and int(calls.read_text()) == 4  # the old one's three answers passed over
    calls.unlink()
    assert wait_ready(Layout(str(tmp_path)), Alive(), [sys.executable, "-c", answer], 30)["pid"] == 100


@pytest.mark.root
def test_a_store_an_old_unit_gave_to_the_service_is_handed_back_and_probed_meanwhile():
    """An install from before the unit's StateDirectory moved to state/: systemd had chowned all of
    /var/lib/mona-edge to the service user, 0750. The login user's probe reports it locked (it used to
    fail, and with it every provision); activate and rollback (as root) hand it back, state/ stays."""
    if os.geteuid() != 0:
        pytest.skip("needs root (chown)")
    import shutil
    import tempfile

    prefix = Path(tempfile.mkdtemp(prefix="me-store-", dir="/tmp"))  # pytest's tmp_path is root's alone
    prefix.chmod(0o755)
    try:
        _store_handed_back(prefix)
    finally:
        shutil.rmtree(prefix, ignore_errors=True)


def _store_handed_back(tmp_path: Path) -> None:
    layout = edge.install.Layout(str(tmp_path))
    (layout.lib / "state").mkdir(parents=True)
    (layout.lib / "configs").mkdir()
    (layout.lib / "configs" / "a.toml").write_text("# kept\n")
    layout.deploy_file.write_text(json.dumps({"current": None}))
    (layout.lib / "state" / "crashes.json").write_text("{}")
    for path in (layout.lib, layout.lib / "configs", layout.lib / "configs" / "a.toml", layout.deploy_file,
                 layout.lib / "state", layout.lib / "state" / "crashes.json"):
        os.chown(path, 4321, 4321)
        os.chmod(path, 0o750 if path.is_dir() else 0o640)
    # the login user's probe (uid 65534 here), by the real helper in a subprocess
    probe = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c",
         "import json, sys; from edge.install import probe; "
         f"print(json.dumps(probe({{'prefix': {str(tmp_path)!r}, 'service_manager': 'supervisor', "
         "'pack': 'ab' * 32})))"],
        capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout)
    assert "deploy.json: Permission denied" in found["store_locked"] and found["deployed"] is None
    log: list[str] = []
    edge.install.reclaim_store(layout, log)
    assert log and "handed back to root" in log[0]
    for path in (layout.lib, layout.lib / "configs", layout.lib / "configs" / "a.toml", layout.deploy_file):
        st = path.stat()
        assert (st.st_uid, st.st_gid) == (0, 0), path
        assert st.st_mode & 0o005 == (0o005 if path.is_dir() else 0o004), (path, oct(st.st_mode))
    assert (layout.lib / "configs" / "a.toml").read_text() == "# kept\n"
    for path in (layout.lib / "state", layout.lib / "state" / "crashes.json"):
        assert path.stat().st_uid == 4321, path  # the service's own
    edge.install.reclaim_store(layout, log)  # a store root already owns: nothing to do
    assert len(log) == 1
