"""Plumbing every stage shares: the package's log (`log`), progress bars (`progress`), worker processes that die with
their parent (`processes`) and where the Trainer's log lines go under the `qualityfm` command (`trainer_logs`)."""
