"""Which wheel to build: the full project (default) or the Pi's wheel (``MONA_EDGE_WHEEL=pi``).

Everything static lives in pyproject.toml; only what differs between the two wheels is chosen here, and
pyproject declares exactly those fields ``dynamic`` (``entry-points``, and ``scripts``, which setuptools
merges into them; the package list is not a ``[project]`` field and is set here too):

* ``full`` (``pip install -e '.[workstation]'``, the tests, a workstation): ``edge`` and ``provisioning``,
  and the workstation's commands in the ``mona_edge.commands`` entry-point group, each declared with the
  extra it needs (``edge.cli`` registers a command only when that extra's requirements are installed).
* ``pi`` (built by ``provisioning.plan.build_wheel`` for every Pi deployment: SSH, ``--sd``, the
  wheelhouse): ``edge`` only, and no ``mona_edge.commands`` entry points. The Pi's own commands (run,
  status, snapshot, calibrate, doctor, detect, demo) are registered by ``edge.cli`` itself, so the Pi's
  ``mona-edge --help`` lists those and nothing of the workstation's, and the quantizer, FOMM and the SSH
  tools are not on its card.

Why one distribution built two ways rather than two distributions: both sides are the same product,
version and name (``pip show mona-edge`` on the Pi and the workstation answer alike, the version is written
once, in ``edge/__init__.py``), and ``edge`` is one folder of one repository. Two distributions would
need a second project folder that packages ``edge`` from its parent (setuptools refuses package folders
outside the project root when it builds from an sdist) or a split repository, and two version fields kept
in step. The Pi wheel is never published: provisioning builds it from the checkout on the workstation and
sends it to the Pi, which is the only place it is installed.
"""

from __future__ import annotations

import os

from setuptools import find_packages, setup

VARIANT_ENV = "MONA_EDGE_WHEEL"

#: The workstation's commands, each loadable only where its extra is installed.
WORKSTATION_COMMANDS = [
    "quantize = provisioning.quantize_cli:register [workstation]",
    "build-pack = provisioning.build_pack_cli:register [workstation]",
    "provision = provisioning.commands:register_provision [workstation]",
    "rollback = provisioning.commands:register_rollback [workstation]",
    "logs = provisioning.commands:register_logs [workstation]",
    "wheelhouse = provisioning.wheelhouse:register [workstation]",
]

SCRIPTS = ["mona-edge = edge.cli:main"]

VARIANTS = {
    "full": {"packages": ["edge", "edge.*", "provisioning", "provisioning.*"],
             "entry_points": {"console_scripts": SCRIPTS, "mona_edge.commands": WORKSTATION_COMMANDS}},
    "pi": {"packages": ["edge", "edge.*"], "entry_points": {"console_scripts": SCRIPTS}},
}

variant = os.environ.get(VARIANT_ENV, "full") or "full"
if variant not in VARIANTS:
    raise SystemExit(f"{VARIANT_ENV}={variant!r}: allowed are {', '.join(VARIANTS)}")
chosen = VARIANTS[variant]
packages = find_packages(include=chosen["packages"])

setup(
    packages=packages,
    package_data={name: ["py.typed"] for name in packages if "." not in name},
    entry_points=chosen["entry_points"],
)
