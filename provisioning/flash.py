"""Provision a Pi over SSH: check it, send only what it lacks, switch atomically, roll back on failure.

The order is what makes it safe: everything new lands in staging and content-named folders first, while
the old version keeps running; only the target-side ``activate`` switches the ``current`` links, and it
switches them back itself when the new version does not report READY. So a dropped connection at any
point before ``activate`` leaves the frame untouched, and one during it is handled on the target.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from edge.errors import ProvisioningError
from provisioning.plan import Artifacts, Plan, check_target, format_plan, make_plan
from provisioning.remote import RemoteError, SshTarget, TransferLog


class TargetCheckError(ProvisioningError):
    """The target cannot run mona-edge; nothing was sent."""


@dataclass
class ProvisionReport:
    plan: Plan
    warnings: list[str]
    transfer: TransferLog = field(default_factory=TransferLog)
    changed: list[str] = field(default_factory=list)
    restarted: bool = False
    status: dict | None = None
    dry_run: bool = False


@dataclass
class ProvisionOptions:
    prefix: str = "/"
    service_manager: str = "auto"
    ready_command: list[str] | None = None
    ready_timeout: float = 60.0
    dry_run: bool = False


def _wanted(artifacts: Artifacts, options: ProvisionOptions) -> dict:
    return {"prefix": options.prefix, "service_manager": options.service_manager,
            "software": artifacts.software.hash, "pack": artifacts.pack.sha if artifacts.pack else None}


def provision(target: SshTarget, artifacts: Artifacts, options: ProvisionOptions,
              say: Callable[[str], None] = print) -> ProvisionReport:
    """Run one provisioning pass on an open ``target``; raises with the failed step on failure."""
    probe = target.helper("probe", _wanted(artifacts, options))
    target.sudo = probe["uid"] != 0 and options.prefix == "/"
    if target.sudo:  # the probe ran unprivileged; file hashes under root-owned folders need sudo too
        probe = target.helper("probe", _wanted(artifacts, options))
    errors, warnings = check_target(probe, artifacts)
    for warning in warnings:
        say(f"warning: {warning}")
    if errors:
        raise TargetCheckError(f"{target.name}: " + "; ".join(errors) + " (nothing was sent)")
    plan = make_plan(artifacts, probe, options.prefix, probe["service_manager"], options.ready_command,
                     options.ready_timeout)
    report = ProvisionReport(plan=plan, warnings=warnings, transfer=target.log, dry_run=options.dry_run)
    if options.dry_run:
        say(format_plan(plan, target.name))
        return report
    if plan.nothing_to_do:
        say(f"{target.name}: up to date ({artifacts.software.hash[:12]}); nothing sent, nothing restarted")
        return report
    for upload in plan.uploads:
        say(f"sending {upload.what}: {len(upload.files)} file(s), {upload.size} bytes")
        target.upload(upload.files, upload.dest)
    result = target.helper("activate", plan.activate)
    for line in result.get("log", []):
        say(f"  {line}")
    report.changed, report.restarted, report.status = result["changed"], result["restarted"], result.get("status")
    say(f"{target.name}: " + (f"READY with new {', '.join(report.changed)}" if report.restarted
                              else "nothing changed"))
    return report


def rollback(target: SshTarget, prefix: str = "/", service_manager: str = "auto",
             ready_command: list[str] | None = None, ready_timeout: float = 60.0) -> dict:
    """Switch the target back to its previous deployment (software, pack, config and unit together)."""
    args = {"prefix": prefix, "service_manager": service_manager, "ready_timeout": ready_timeout}
    if ready_command:
        args["ready_command"] = ready_command
    probe = target.helper("probe", {"prefix": prefix, "service_manager": service_manager})
    target.sudo = probe["uid"] != 0 and prefix == "/"
    return target.helper("rollback", args)


def logs(target: SshTarget, lines: int = 50, follow: bool = False, prefix: str = "/",
         service_manager: str = "auto") -> int:
    """The service's journal (or the plain supervisor's log file) printed here; ``follow`` until Ctrl-C."""
    probe = target.helper("probe", {"prefix": prefix, "service_manager": service_manager})
    target.sudo = probe["uid"] != 0 and prefix == "/"
    return target.stream_helper("logs", {"prefix": prefix, "service_manager": service_manager,
                                         "lines": lines, "follow": follow})


__all__ = ["ProvisionOptions", "ProvisionReport", "RemoteError", "TargetCheckError", "logs", "provision", "rollback"]
