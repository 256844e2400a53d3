"""The transformers Trainer, with our loss, token counting, a progress bar, Ctrl-C checkpoints, and a data order
that a resumed run reproduces.

The Trainer's own samplers draw their order from a generator that accelerate seeds once, when the data
loader is prepared, and that then runs on from epoch to epoch; a run resumed in its second epoch starts that
generator afresh and sees another order (the first epoch matched, later ones differed by up to 4e-3 in the
weights). Here the order of epoch ``e`` is drawn from ``seed + e`` alone, so it is the same however the run
got there; the Trainer calls ``set_epoch`` before each epoch, the resumed one included.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from olive_ext.train.loss import LossFunction, mean_token_loss


@dataclass
class TrainStats:
    """What the callbacks collect while training."""

    tokens: int = 0  # non-pad tokens seen in training forward passes (this session)
    loss_tokens: int = 0
    started: float = 0.0
    seconds: float = 0.0
    loss_curve: list[dict[str, float]] = field(default_factory=list)
    eval_curve: list[dict[str, float]] = field(default_factory=list)
    interrupted: bool = False
    start_step: int = 0
    last_loss: float | None = None


def make_trainer(model: Any, args: Any, train_set: Any, eval_set: Any, collator: Any, loss_fn: LossFunction,
                 stats: TrainStats, callbacks: list[Any]) -> Any:  # fmt: skip
    """A Trainer whose loss is :class:`LossFunction` normalized by the target tokens of the whole step."""
    from transformers import Trainer

    class _Trainer(Trainer):
        loss_is_scaled_for_ga = True

        def _get_train_sampler(self, train_dataset: Any = None) -> Any:
            dataset = train_dataset if train_dataset is not None else self.train_dataset
            strategy = self.args.train_sampling_strategy
            if dataset is None or strategy not in ("group_by_length", "random"):
                return super()._get_train_sampler(train_dataset)
            seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
            # one optimizer step's examples over every process: data-parallel runs group as a single process would
            group = self.args.train_batch_size * self.args.gradient_accumulation_steps * self.args.world_size
            return epoch_seeded_sampler(dataset, seed, group if strategy == "group_by_length" else None)

        def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                         num_items_in_batch: Any = None) -> Any:  # fmt: skip
            real = inputs.pop("real_tokens", None)
            loss_sum, count = loss_fn(model, inputs)
            if model.training:
                stats.tokens += int(real) if real is not None else int(inputs["input_ids"].numel())
                stats.loss_tokens += int(count)
            # Sum over the step's target tokens / their number across all accumulated batches (as transformers does).
            if model.training and num_items_in_batch is not None:
                denom = num_items_in_batch
            else:
                denom = count * (self.args.gradient_accumulation_steps if model.training else 1)
            loss = loss_sum / denom.clamp(min=1) if hasattr(denom, "clamp") else loss_sum / max(int(denom), 1)
            if model.training and num_items_in_batch is not None and self.args.average_tokens_across_devices:
                # data-parallel: the count is every process's and DDP averages the gradients, so scale back up
                # (as transformers' own compute_loss does); one process: num_processes is 1
                loss = loss * self.accelerator.num_processes
            return (loss, {"loss": loss}) if return_outputs else loss

        def evaluate(self, eval_dataset: Any = None, ignore_keys: Any = None,
                     metric_key_prefix: str = "eval") -> dict[str, float]:  # fmt: skip
            """The eval loss per target token over every eval row, as the fine-tune's final eval loss is: the
            Trainer's loop averaged batch means (6.204 in --eval_steps' curve against a final 6.211 on the same
            weights, 10 rows in batches of 8). Data-parallel runs keep the Trainer's loop, which gathers."""
            if self.args.world_size > 1:
                return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)

            def batches() -> Iterator[dict[str, Any]]:
                for batch in self.get_eval_dataloader(eval_dataset):
                    inputs = self._prepare_inputs(batch)
                    inputs.pop("real_tokens", None)
                    yield inputs

            with self.autocast_smart_context_manager():
                loss = mean_token_loss(self.model, batches(), loss_fn)
            metrics = {f"{metric_key_prefix}_loss": loss}
            self.log(metrics)
            self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
            return metrics

    trainer = _Trainer(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        data_collator=collator,
        callbacks=callbacks,
    )
    trainer.model_accepts_loss_kwargs = True  # so the Trainer counts target tokens across accumulation steps
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for noisy in (PrinterCallback, ProgressCallback):  # olive_ext.progress shows step, loss, speed (bar, lines, hook)
        trainer.remove_callback(noisy)
    return trainer


def epoch_seeded_sampler(dataset: Any, seed: int, group_size: int | None = None) -> Any:
    """A sampler whose order in epoch ``e`` depends only on ``seed + e`` (set by ``set_epoch``).

    ``group_size``: batch examples of similar length together, as transformers' ``group_by_length`` does
    (same grouping function), else a plain random permutation.
    """
    import torch
    from torch.utils.data import Sampler
    from transformers.trainer_pt_utils import get_length_grouped_indices

    lengths = [len(row["input_ids"]) for row in dataset] if group_size else None

    class EpochSeededSampler(Sampler[int]):
        def __init__(self) -> None:
            self.epoch = 0

        def set_epoch(self, epoch: int) -> None:
            self.epoch = epoch

        def __len__(self) -> int:
            return len(dataset)

        def __iter__(self) -> Iterator[int]:
            generator = torch.Generator().manual_seed(seed + self.epoch)
            if lengths is not None:
                return iter(get_length_grouped_indices(lengths, group_size, generator=generator))
            return iter(torch.randperm(len(dataset), generator=generator).tolist())

    return EpochSeededSampler()


def make_callback(stats: TrainStats, bar: Any, stop_flag: dict[str, bool]) -> Any:
    """Progress (step of total, loss, tokens/s; the bar adds the ETA), the loss curve, a checkpoint on Ctrl-C.

    ``bar`` is a :class:`olive_ext.progress.TaskHandle`: its figures reach the live bar, the plain log
    lines and the ``on_update`` hook alike."""
    from transformers import TrainerCallback

    class _Callback(TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            stats.started = time.perf_counter()
            stats.start_step = state.global_step
            bar.update(total=state.max_steps, completed=state.global_step)

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> Any:
            stats.seconds = time.perf_counter() - stats.started
            rate = stats.tokens / stats.seconds if stats.seconds > 0 else 0.0
            bar.update(completed=state.global_step, info={"loss": stats.last_loss, "tokens_per_second": rate})
            if stop_flag.get("stop"):
                stats.interrupted = True
                control.should_save = True
                control.should_training_stop = True
            elif state.global_step >= state.max_steps:
                # the last step leaves a checkpoint too: a Ctrl-C while the trained model is then evaluated or
                # saved lost the whole training (removed once the adapter is written)
                control.should_save = True
            return control

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any) -> None:
            logs = logs or {}
            if "loss" in logs:
                stats.last_loss = float(logs["loss"])
                stats.loss_curve.append({"step": state.global_step, "loss": round(float(logs["loss"]), 5),
                                         "learning_rate": float(logs.get("learning_rate", 0.0))})  # fmt: skip
            if "eval_loss" in logs:
                stats.eval_curve.append({"step": state.global_step, "eval_loss": round(float(logs["eval_loss"]), 5)})

        def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            stats.seconds = time.perf_counter() - stats.started

    return _Callback()


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # Ctrl-C; a scheduler's preemption, `docker stop`, `kill PID`


@contextlib.contextmanager
def stop_on_interrupt(console: Any = None) -> Iterator[dict[str, bool]]:
    """The first Ctrl-C (or SIGTERM) asks training to stop after the current step (with a checkpoint); a second
    aborts, as the handler that was there before would (SIGTERM ended the process with no checkpoint)."""
    flag = {"stop": False}
    try:
        previous = {sig: signal.getsignal(sig) for sig in _STOP_SIGNALS}
    except ValueError:  # not the main thread: leave signals alone
        yield flag
        return
    for sig, before in previous.items():
        if before is None:  # installed outside Python: restore the default behaviour afterwards
            previous[sig] = signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL

    def handler(signum: int, frame: Any) -> None:
        if flag["stop"]:
            for sig, before in previous.items():
                signal.signal(sig, before)
            before = previous.get(signal.Signals(signum))
            if callable(before):
                before(signum, frame)  # the command's own handler (SIGTERM: olive_ext.cli.common.Terminated)
            raise KeyboardInterrupt
        flag["stop"] = True
        flag["sigterm"] = signum == signal.SIGTERM  # the exit code says which: 143, as every other command's
        key = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
        message = f"{key}: saving a checkpoint after this step ({key} again to abort without one)"
        if console is not None:
            console.print(f"[yellow]{message}[/]")
        else:
            import sys

            print(message, file=sys.stderr)

    try:
        for sig in _STOP_SIGNALS:
            signal.signal(sig, handler)
    except ValueError:
        yield flag
        return
    try:
        yield flag
    finally:
        for sig, before in previous.items():
            signal.signal(sig, before)
