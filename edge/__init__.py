"""mona-edge, the Pi side: camera -> BlazeFace -> gaze -> the portrait on screen.

Nothing in this package may import from ``provisioning``: the Pi never carries the workstation's tools
(its wheel holds ``edge`` alone; ``tests/test_import_contract.py`` holds the rule).
"""

#: The one place the version is written: pyproject.toml reads it (``[tool.setuptools.dynamic]``), so the
#: full wheel, the Pi's and an editable install all report this.
__version__ = "0.1.0"
