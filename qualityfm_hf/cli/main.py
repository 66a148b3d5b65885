"""`qualityfm` command line, laid out like accelerate's: one module per command.

Each command module defines `<name>_command_parser(subparsers)`, which registers its sub-parser and
sets `func`. Torch and transformers are imported inside the commands, so `qualityfm --help` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from .errors import QualityFMCLIError

DEBUG_ENV = "QUALITYFM_DEBUG"

# (module, parser-builder) in the order `--help` lists them.
COMMANDS = [
    ("quickstart", "quickstart_command_parser"),
    ("env", "env_command_parser"),
    ("build_pairs", "build_pairs_command_parser"),
    ("quality", "quality_command_parser"),
    ("pretrain", "pretrain_command_parser"),
    ("finetune", "finetune_command_parser"),
    ("evaluate", "evaluate_command_parser"),
    ("predict", "predict_command_parser"),
    ("embed", "embed_command_parser"),
    ("probe", "probe_command_parser"),
    ("push", "push_command_parser"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qualityfm",
        allow_abbrev=False,
        description="QualityFM: quality-aware foundation model for ICU/OR PPG and ECG waveforms.",
        epilog=f"Every failure is one line on stderr (exit status 1); `qualityfm --debug COMMAND ...` or "
               f"{DEBUG_ENV}=1 shows the traceback instead.",
    )
    parser.add_argument("--debug", action="store_true", help="Show the full traceback when a command fails.")
    parser.add_argument("--verbosity", choices=("debug", "info", "warning", "error"), default="info",
                        help="Level of the progress messages on stderr (default info).")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name, builder in COMMANDS:
        module = importlib.import_module(f".{module_name}", __package__)
        getattr(module, builder)(subparsers)
    # No prefix matching: `--max-step` or `--num-work` must be an error, not silently another option.
    for command_parser in (parser, *subparsers.choices.values()):
        command_parser.allow_abbrev = False
    # Every command takes --no-progress (some define it themselves, with a command-specific help).
    for command_parser in subparsers.choices.values():
        if not any("--no-progress" in action.option_strings for action in command_parser._actions):
            command_parser.add_argument("--no-progress", action="store_true", help="Hide progress bars.")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "accepts_training_arguments", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    debug = args.debug or os.environ.get(DEBUG_ENV, "").lower() not in ("", "0", "false")
    try:
        from ..utils.memory import keep_freed_memory
        from ..utils.threads import sleep_idle_threads

        keep_freed_memory()  # before torch: steps then reuse freed memory instead of faulting in fresh pages
        sleep_idle_threads()  # before torch: idle OpenMP threads must not spin on cores that other jobs share
        import qualityfm_hf

        qualityfm_hf.load()  # deferred by the `qualityfm` launcher until the arguments were parsed
        from ..utils.log import set_verbosity

        set_verbosity(args.verbosity)
        from ..utils.trainer_logs import route_to_log

        route_to_log()  # the Trainer's log dicts go to stderr: stdout is the result (--json)
        if getattr(args, "no_progress", False):
            from ..utils.progress import disable_progress_bars

            disable_progress_bars()
        result = args.func(args)
    except QualityFMCLIError as err:
        if debug:
            raise
        # One line, no traceback: the message already says what to do.
        print(f"qualityfm {args.command}: error: {err}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `qualityfm ... | head`: the reader left; nothing to report
        # Python flushes stdout at exit, which would fail again on the closed pipe (the recipe of the signal docs).
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):  # stdout without a file descriptor (captured)
            pass
        return 0
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"qualityfm {args.command}: interrupted.", file=sys.stderr)
        return 130
    except Exception as err:  # anything the command did not foresee: still one line, with the way to the traceback
        if debug:
            raise
        message = " ".join(str(err).split()) or "(no message)"
        print(f"qualityfm {args.command}: error: {type(err).__name__}: {message} (run `qualityfm --debug "
              f"{args.command} ...` or set {DEBUG_ENV}=1 for the traceback)", file=sys.stderr)
        return 1
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
