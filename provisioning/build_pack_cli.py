"""``mona-edge build-pack``: turn a portrait into the gaze pack a frame displays."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.errors import ExitStatus
from provisioning.packer import DEFAULT_SCREEN, PackPlan, build_pack


def _size(text: str):
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected WIDTHxHEIGHT, e.g. 1080x1920") from None
    if w < 16 or h < 16:
        raise argparse.ArgumentTypeError(f"{text!r}: at least 16x16")
    return w, h


def _run(args: argparse.Namespace) -> ExitStatus:
    credits = []
    if args.credit_work or args.credit_author or args.credit_source or args.credit_licence:
        credits.append({"work": args.credit_work or Path(args.portrait).stem, "author": args.credit_author or "",
                        "source": args.credit_source or "", "licence": args.credit_licence or ""})
    plan = PackPlan(portrait=args.portrait, out_dir=args.out, method=resolve_method(args), frames=args.frames,
                    screen=args.screen, span_deg=(-args.span_deg, args.span_deg), head_turn=args.head_turn,
                    name=args.name, driver=args.driver, checkpoint=args.checkpoint, device=args.device,
                    batch_size=args.batch_size, credits=credits)
    build_pack(plan)
    return ExitStatus.OK


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("build-pack", help="make a gaze pack from a portrait (workstation)",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("--portrait", type=Path, required=True, help="the painting or photograph")
    parser.add_argument("--out", type=Path, required=True, help="pack folder to write")
    parser.add_argument("--method", choices=["eyewarp", "fomm"], default=None,
                        help="eyewarp (no weights) or fomm (needs --driver and --checkpoint); "
                             "default: fomm when a checkpoint is given, else eyewarp")
    parser.add_argument("--driver", type=Path, help="FOMM: video of eyes moving left and right")
    parser.add_argument("--checkpoint", type=Path, help="FOMM: the vox-256 checkpoint (vox-cpk.pth.tar)")
    parser.add_argument("--device", default="cpu", help="FOMM: cpu or cuda")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--frames", type=int, default=33, help="frames in the pack (default 33)")
    parser.add_argument("--screen", type=_size, default=DEFAULT_SCREEN, help="target screen, default 1080x1920")
    parser.add_argument("--span-deg", type=float, default=30.0, help="viewer angle of the extreme frames")
    parser.add_argument("--head-turn", type=float, default=0.0, help="eyewarp: slight head turn (0..0.05)")
    parser.add_argument("--name", help="pack name (default: the portrait's file name)")
    parser.add_argument("--credit-work")
    parser.add_argument("--credit-author")
    parser.add_argument("--credit-source")
    parser.add_argument("--credit-licence")
    parser.set_defaults(handler=_run)


def resolve_method(args: argparse.Namespace) -> str:
    return args.method or ("fomm" if args.checkpoint else "eyewarp")
