"""Where the Trainer's log dicts go under the `qualityfm` command: the package's log on stderr, not stdout.

The Trainer prints every log dict to stdout, with `print` (`PrinterCallback`, when `disable_tqdm`) or with
`tqdm.write` (`ProgressCallback`). Under `qualityfm ... --json` stdout is the result a script parses, and under
`--no-progress` the bar itself must go. The command calls `route_to_log()` once; `adapt(trainer)` then swaps those
callbacks for ones that keep the terminal to one line per training run: the training bar (while progress bars are
on) with the latest loss and evaluation metrics as its postfix, or, without a bar, one INFO line per log with those
metrics alone. Every log dict in full goes to the log at DEBUG (`qualityfm --verbosity debug`); all of them stay in
`trainer.state.log_history` and the checkpoints' trainer_state.json. In Python nothing changes unless
`route_to_log()` was called: notebooks keep the Trainer's own output.
"""

from __future__ import annotations

from .log import get_logger

logger = get_logger(__name__)
_ROUTED = False
# transformers' per-file bars: one "Loading weights" per fold and one "Writing model shards" per checkpoint, drawn
# inside the training bar. Hidden under the command; Hub download bars and the package's own bars stay.
QUIET_BARS = ("Loading weights", "Writing model shards")


def route_to_log(enabled: bool = True) -> None:
    """Make `adapt` act (the `qualityfm` command turns it on) and hide transformers' per-file bars (`QUIET_BARS`)."""
    global _ROUTED
    _ROUTED = bool(enabled)
    from transformers.utils import logging as hf_logging

    if hasattr(hf_logging, "set_tqdm_hook"):  # transformers >= 5
        hf_logging.set_tqdm_hook(_quiet_file_bars if enabled else None)


def _quiet_file_bars(factory, args, kwargs):
    if kwargs.get("desc") in QUIET_BARS:
        kwargs = {**kwargs, "disable": True}
    return factory(*args, **kwargs)


def _readable(logs: dict) -> dict:
    return {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in logs.items() if k != "total_flos"}


def _progress(logs: dict) -> dict:
    """The part of a log dict worth a terminal line: training loss and evaluation metrics (no runtimes, rates,
    learning rate or gradient norm)."""
    shown = {k: v for k, v in logs.items()
             if k in ("loss", "train_loss") or k.startswith("eval_") and not k.endswith(("_runtime", "_per_second"))}
    return _readable(shown)


def adapt(trainer) -> None:
    """Replace `trainer`'s stdout-printing callbacks (see the module docstring); a no-op unless routed."""
    if not _ROUTED:
        return
    from transformers.trainer_callback import PrinterCallback, ProgressCallback, TrainerCallback

    from .progress import progress_enabled

    class BarCallback(ProgressCallback):
        """The training bar alone: the evaluation bar nested in it redrew over it with cursor-up codes (`[A` in a
        log file) at every evaluation, and log dicts go to LogCallback."""

        def on_train_begin(self, args, state, control, **kwargs):
            super().on_train_begin(args, state, control, **kwargs)
            self.shown = {}
            if self.training_bar is not None:
                self.training_bar.set_description("training")

        def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
            pass

        def on_log(self, args, state, control, logs=None, **kwargs):
            pass

    class LogCallback(TrainerCallback):
        def __init__(self, bar=None):
            self.bar = bar

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not (state.is_world_process_zero and logs):
                return
            logger.debug("step %d: %s", state.global_step, _readable(logs))
            shown = _progress(logs)
            if not shown:
                return
            training_bar = getattr(self.bar, "training_bar", None)
            if training_bar is not None:  # the latest of each on the bar, which stays on screen when training ends
                self.bar.shown.update(shown)
                training_bar.set_postfix(self.bar.shown)
                return
            epoch = f" (epoch {logs['epoch']:.3g})" if isinstance(logs.get("epoch"), float) else ""
            logger.info("step %d: %s%s", state.global_step, ", ".join(f"{k} {v}" for k, v in shown.items()), epoch)

    for callback in list(trainer.callback_handler.callbacks):
        if isinstance(callback, (PrinterCallback, ProgressCallback)):
            trainer.remove_callback(callback)
    bar = None
    if progress_enabled() and not trainer.args.disable_tqdm:
        bar = BarCallback()
        trainer.add_callback(bar)
    trainer.add_callback(LogCallback(bar))


__all__ = ["QUIET_BARS", "adapt", "route_to_log"]
