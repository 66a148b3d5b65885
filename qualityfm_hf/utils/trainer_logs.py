"""Where the Trainer's log dicts go under the `qualityfm` command: the package's log on stderr, not stdout.

The Trainer prints every log dict to stdout, with `print` (`PrinterCallback`, when `disable_tqdm`) or with
`tqdm.write` (`ProgressCallback`). Under `qualityfm ... --json` stdout is the result a script parses, and under
`--no-progress` the bar itself must go. The command calls `route_to_log()` once; `adapt(trainer)` then swaps those
callbacks for ones that log each dict at INFO (`--verbosity warning` hides them) and keep the bar only while
progress bars are on. In Python nothing changes unless `route_to_log()` was called: notebooks keep the Trainer's
own output.
"""

from __future__ import annotations

from .log import get_logger

logger = get_logger(__name__)
_ROUTED = False


def route_to_log(enabled: bool = True) -> None:
    """Make `adapt` act (the `qualityfm` command turns it on)."""
    global _ROUTED
    _ROUTED = bool(enabled)


def _readable(logs: dict) -> dict:
    return {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in logs.items() if k != "total_flos"}


def adapt(trainer) -> None:
    """Replace `trainer`'s stdout-printing callbacks (see the module docstring); a no-op unless routed."""
    if not _ROUTED:
        return
    from transformers.trainer_callback import PrinterCallback, ProgressCallback, TrainerCallback

    from .progress import progress_enabled

    class LogCallback(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and logs:
                logger.info("step %d: %s", state.global_step, _readable(logs))

    class BarCallback(ProgressCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            pass  # LogCallback reports them; tqdm.write would put them on stdout

    for callback in list(trainer.callback_handler.callbacks):
        if isinstance(callback, (PrinterCallback, ProgressCallback)):
            trainer.remove_callback(callback)
    if progress_enabled() and not trainer.args.disable_tqdm:
        trainer.add_callback(BarCallback())
    trainer.add_callback(LogCallback())


__all__ = ["adapt", "route_to_log"]
