"""mona-edge, the workstation side: quantize models, build gaze packs, provision a Pi."""
