"""The ``tcomp`` command line."""

from __future__ import annotations

import argparse
import sys


def _cmd_demo(args: argparse.Namespace) -> int:
    from tcomp.demo import run_demo

    run_demo(size=args.size, trials=args.trials, image_size=args.image_size)
    return 0


def _cmd_target(args: argparse.Namespace) -> int:
    from tcomp.target import Target

    target = Target.parse(args.target)
    print(target)
    print(f"cpu: {target.mcpu}, cores: {target.num_cores}")
    return 0


def _cmd_tune(args: argparse.Namespace) -> int:
    from tcomp.autotune.command import run_tune

    return run_tune(args)


def _cmd_pick(args: argparse.Namespace) -> int:
    from tcomp.autotune.command import run_pick

    return run_pick(args)


def _cmd_compile(args: argparse.Namespace) -> int:
    from tcomp.graph.command import run_compile

    return run_compile(args)


def _cmd_run(args: argparse.Namespace) -> int:
    from tcomp.graph.command import run_run

    return run_run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tcomp", description="tcomp: a tensor compiler with autotuning")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="tune a matmul and compile and run a model, compared with numpy/onnxruntime")
    demo.add_argument("--size", type=int, default=512, help="matrix size of the tuned matmul (default 512)")
    demo.add_argument("--trials", type=int, default=24, help="tuning trials (default 24)")
    demo.add_argument("--image-size", type=int, default=64, help="input resolution of the demo model (default 64)")
    demo.set_defaults(func=_cmd_demo)
    target = sub.add_parser("target", help="show how a target string is understood on this machine")
    target.add_argument("target", nargs="?", default="llvm")
    target.set_defaults(func=_cmd_target)
    from tcomp.autotune.command import add_pick_arguments, add_tune_arguments

    tune = sub.add_parser("tune", help="autotune operators (templates) and log the measurements")
    add_tune_arguments(tune)
    tune.set_defaults(func=_cmd_tune)
    pick = sub.add_parser("pick", help="keep the best tuning record of each task")
    add_pick_arguments(pick)
    pick.set_defaults(func=_cmd_pick)
    from tcomp.graph.command import add_compile_arguments, add_run_arguments

    compile_cmd = sub.add_parser("compile", help="compile an ONNX model to a folder (native code, graph, params)")
    add_compile_arguments(compile_cmd)
    compile_cmd.set_defaults(func=_cmd_compile)
    run_cmd = sub.add_parser("run", help="run a compiled model folder, timing and profiling it")
    add_run_arguments(run_cmd)
    run_cmd.set_defaults(func=_cmd_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
