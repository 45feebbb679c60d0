"""mona-edge, the Pi side: camera -> BlazeFace -> gaze -> the portrait on screen.

Nothing in this package may import from ``provisioning``: the Pi never carries the workstation's tools.
"""

__version__ = "0.1.0"
