"""Where a `tune` run's scalars go: train_log.jsonl always, TensorBoard and W&B (offline) when asked for.

One call per epoch (`epoch`) and one after evaluation (`evaluation`). Step numbers count finished epochs:
the row of epoch e (0-based in the JSONL) is step e + 1, and the accuracies measured after training are at
step = number of epochs (0 for a run that does not train, such as zero-shot).

Resume: train_log.jsonl is the record. `start(rows)` keeps the rows of the epochs the checkpoint holds and
rewrites every other sink from them before training continues: the TensorBoard folder and the offline W&B
folder are deleted and replayed, so a resumed run holds each step exactly once, whatever the interrupted
process had written past its last checkpoint. Replayed events carry the replay's wall time.
"""
from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

from cache.atomic import atomic_write_text
from cache.errors import UserError

LOG_FILE = "train_log.jsonl"
TENSORBOARD_DIR = "tensorboard"
WANDB_DIR = "wandb"
SINKS = ("jsonl", "tensorboard", "wandb")
# Python package each optional sink needs: (import name, what to install).
_PACKAGES = {"tensorboard": ("tensorboard", "pip install tensorboard"),
             "wandb": ("wandb", "pip install wandb")}
# Row keys that are bookkeeping, not scalars to plot.
_NOT_SCALARS = ("epoch", "steps")


def installed(sink: str) -> bool:
    """Whether the package `sink` needs can be imported here (jsonl needs none)."""
    return sink not in _PACKAGES or importlib.util.find_spec(_PACKAGES[sink][0]) is not None


def default_sinks() -> list[str]:
    """jsonl, plus TensorBoard where its writer is importable."""
    return ["jsonl", "tensorboard"] if installed("tensorboard") else ["jsonl"]


def check_sinks(value) -> None:
    """Validate `train.log_to`: a list of known sinks, jsonl included, each one's package installed."""
    key = "config key train.log_to"
    if not isinstance(value, (list, tuple)) or not all(isinstance(s, str) for s in value):
        raise UserError(f"{key}: {value!r} is not a list of names among {', '.join(SINKS)}")
    for sink in value:
        if sink not in SINKS:
            raise UserError(f"{key}: {sink!r} is not one of {', '.join(SINKS)}")
        if not installed(sink):
            name, how = _PACKAGES[sink]
            raise UserError(f"{key}: {sink!r} needs the `{name}` package, which is not installed ({how}), "
                            f"or drop it from the list")
    if "jsonl" not in value:
        raise UserError(f"{key}: {list(value)!r} must include 'jsonl' (train_log.jsonl is what --resume and "
                        f"`report` read)")
    if len(set(value)) != len(value):
        raise UserError(f"{key}: {list(value)!r} names a sink twice")


def read_rows(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / LOG_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def scalars(row: dict) -> dict[str, float]:
    """The plotted scalars of one JSONL row, under the names the TensorBoard and W&B sinks use."""
    return {f"train/{k}": float(v) for k, v in row.items()
            if k not in _NOT_SCALARS and isinstance(v, (int, float)) and not isinstance(v, bool)}


class RunLog:
    """The sinks of one run folder. Opens nothing until the first write; `close` flushes."""

    def __init__(self, run_dir: Path, sinks=("jsonl",), run_name: str = "", config: dict | None = None):
        self.run_dir = Path(run_dir)
        self.sinks = tuple(sinks)
        self.run_name = run_name or self.run_dir.name
        self.config = config or {}
        self.rows: list[dict] = []
        self._tb = None
        self._wandb = None

    def start(self, rows: list[dict]) -> list[dict]:
        """Begin (rows = []) or resume (rows = the checkpointed epochs' rows): every sink then holds exactly `rows`."""
        self.rows = list(rows)
        self._write_jsonl()
        for row in self.rows:
            self._scalars(scalars(row), row["epoch"] + 1)
        return self.rows

    def epoch(self, row: dict) -> None:
        """Record one finished epoch's row (keys: epoch, lr, steps, seconds, loss and its parts)."""
        self.rows.append(row)
        self._write_jsonl()
        self._scalars(scalars(row), row["epoch"] + 1)

    def evaluation(self, step: int, values: dict[str, float]) -> None:
        """Accuracies (and their harmonic mean / mean) measured after `step` epochs, as eval/<name>."""
        self._scalars({f"eval/{k}": float(v) for k, v in values.items() if v is not None}, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None

    def __enter__(self) -> "RunLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def event_dir(self) -> Path:
        return self.run_dir / TENSORBOARD_DIR

    def _write_jsonl(self) -> None:
        if "jsonl" in self.sinks:  # the whole file each time, atomically: a crash never leaves half a row
            atomic_write_text(self.run_dir / LOG_FILE,
                              "".join(json.dumps(r, sort_keys=True) + "\n" for r in self.rows))

    def _scalars(self, values: dict[str, float], step: int) -> None:
        if not values:
            return
        if "tensorboard" in self.sinks:
            writer = self._tensorboard()
            for name, value in values.items():
                writer.add_scalar(name, value, global_step=step)
            writer.flush()
        if "wandb" in self.sinks:
            self._wandb_run().log(values, step=step)

    def _tensorboard(self):
        if self._tb is None:
            from torch.utils.tensorboard import SummaryWriter

            # A fresh stream per process: what an earlier process wrote is replaced, never appended to.
            shutil.rmtree(self.event_dir, ignore_errors=True)
            self._tb = SummaryWriter(log_dir=str(self.event_dir))
        return self._tb

    def _wandb_run(self):
        if self._wandb is None:
            import wandb

            shutil.rmtree(self.run_dir / WANDB_DIR, ignore_errors=True)
            self._wandb = wandb.init(mode="offline", dir=str(self.run_dir), project="sept-pipeline",
                                     name=self.run_name, config=self.config)
        return self._wandb
