"""The run log: TensorBoard events hold exactly train_log.jsonl's values, once per step, also after a resume."""
from __future__ import annotations

import json

import numpy as np
import pytest

from cache.errors import UserError
from stages.tuning import trainer as trainer_mod
from stages.tuning.config import SeptConfig, TrainConfig
from stages.tuning.run_log import RunLog, check_sinks, installed, read_rows, scalars

from test_trainer import fresh, make_bank, make_data

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader  # noqa: E402

TRAIN = TrainConfig(epochs=3, batch_size=4, lr=0.05, schedule="cosine", warmup_epochs=1, warmup_lr=1e-3,
                    log_to=["jsonl", "tensorboard"])
SEPT = SeptConfig(enabled=True)


def raw_scalars(event_dir) -> list[tuple[str, int, float]]:
    """Every scalar event in every events file of the folder, duplicates included (the accumulator of
    TensorBoard's UI would purge some of them, so it cannot show that there are none)."""
    out = []
    for path in sorted(event_dir.glob("events.out.tfevents.*")):
        for event in LegacyEventFileLoader(str(path)).Load():  # raw events, as written
            for value in event.summary.value:
                out.append((value.tag, event.step, value.simple_value))
    return out


def expected(rows: list[dict]) -> list[tuple[str, int, float]]:
    """What the events must hold for these JSONL rows; TensorBoard stores float32."""
    return sorted((tag, row["epoch"] + 1, float(np.float32(v))) for row in rows for tag, v in scalars(row).items())


def train_kgcoop_sept(tiny_backbone, filled_cache, run_dir, resume=False):
    learner = fresh(tiny_backbone, "kgcoop")
    with RunLog(run_dir, TRAIN.log_to) as log:
        return trainer_mod.train(learner, make_data(tiny_backbone), TRAIN, SEPT,
                                 make_bank(tiny_backbone, learner, *filled_cache), seed=1, run_dir=run_dir,
                                 identity={"config": {}}, backbone_fingerprint=tiny_backbone.fingerprint,
                                 resume=resume, progress=False, run_log=log)


def test_events_hold_the_jsonl_values_of_every_loss_part_and_the_lr(tiny_backbone, filled_cache, tmp_path):
    train_kgcoop_sept(tiny_backbone, filled_cache, tmp_path / "r")
    rows = read_rows(tmp_path / "r")
    assert [r["epoch"] for r in rows] == [0, 1, 2]
    events = raw_scalars(tmp_path / "r" / "tensorboard")
    assert sorted(events) == expected(rows)
    tags = {tag for tag, _, _ in events}
    assert {"train/loss", "train/ce", "train/kg", "train/se", "train/intra", "train/inter", "train/lr"} <= tags
    # The lr really follows the schedule (warm-up 1e-3, then cosine from 0.05), not a constant.
    lrs = sorted((step, v) for tag, step, v in events if tag == "train/lr")
    assert lrs[0] == (1, pytest.approx(1e-3)) and lrs[1] == (2, pytest.approx(0.05))

    # TensorBoard's own reader (what `tensorboard --logdir` uses) sees the same values.
    acc = EventAccumulator(str(tmp_path / "r" / "tensorboard"))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("train/inter")] == \
           [(r["epoch"] + 1, pytest.approx(r["inter"], rel=1e-6)) for r in rows]


def test_resume_rewrites_the_events_without_duplicate_steps(tiny_backbone, filled_cache, tmp_path, monkeypatch):
    # Stand-in for a kill between epoch 3's log row and its checkpoint (the latest checkpoint is epoch 2):
    # the interrupted process has already written step 3 to the events file and the JSONL.
    real_save = trainer_mod.save_checkpoint

    def die_before_epoch_3(root, epoch, *args, **kwargs):
        if epoch == 3:
            raise KeyboardInterrupt
        real_save(root, epoch, *args, **kwargs)

    monkeypatch.setattr(trainer_mod, "save_checkpoint", die_before_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        train_kgcoop_sept(tiny_backbone, filled_cache, tmp_path / "cut")
    monkeypatch.setattr(trainer_mod, "save_checkpoint", real_save)
    cut_rows = read_rows(tmp_path / "cut")
    assert len(cut_rows) == 3 and any(step == 3 for _, step, _ in raw_scalars(tmp_path / "cut" / "tensorboard"))

    summary = train_kgcoop_sept(tiny_backbone, filled_cache, tmp_path / "cut", resume=True)
    assert summary["resumed_from_epoch"] == 2
    rows = read_rows(tmp_path / "cut")
    events = raw_scalars(tmp_path / "cut" / "tensorboard")
    keys = [(tag, step) for tag, step, _ in events]
    assert len(keys) == len(set(keys)), "a step was written twice"
    assert sorted(events) == expected(rows)
    assert rows[:2] == cut_rows[:2]  # the checkpointed epochs are replayed as they were logged


def test_evaluation_scalars_land_after_the_last_epoch(tmp_path):
    with RunLog(tmp_path, ["jsonl", "tensorboard"]) as log:
        log.start([])
        log.epoch({"epoch": 0, "lr": 0.5, "steps": 2, "seconds": 0.1, "loss": 1.25})
        log.evaluation(1, {"base_acc": 50.0, "new_acc": 25.0, "hm": 100 / 3})
    events = sorted(raw_scalars(tmp_path / "tensorboard"))
    assert events == sorted([("train/lr", 1, 0.5), ("train/seconds", 1, float(np.float32(0.1))),
                             ("train/loss", 1, 1.25), ("eval/base_acc", 1, 50.0), ("eval/new_acc", 1, 25.0),
                             ("eval/hm", 1, float(np.float32(100 / 3)))])
    assert [json.loads(line)["loss"] for line in (tmp_path / "train_log.jsonl").read_text().splitlines()] == [1.25]


@pytest.mark.skipif(installed("wandb"), reason="wandb is installed here: the refusal cannot happen")
def test_wandb_asked_for_but_not_installed_is_a_one_line_error():
    with pytest.raises(UserError) as err:
        TrainConfig(log_to=["jsonl", "wandb"])
    assert str(err.value) == ("config key train.log_to: 'wandb' needs the `wandb` package, which is not installed "
                              "(pip install wandb), or drop it from the list")


@pytest.mark.parametrize("value, says", [
    (["jsonl", "mlflow"], "'mlflow' is not one of jsonl, tensorboard, wandb"),
    (["tensorboard"], "must include 'jsonl'"),
    (["jsonl", "jsonl"], "names a sink twice"),
    ("jsonl", "is not a list of names"),
])
def test_bad_log_to_names_the_key_and_the_choices(value, says):
    with pytest.raises(UserError, match="config key train.log_to: ") as err:
        check_sinks(value)
    assert says in str(err.value) and "\n" not in str(err.value)


def test_default_is_jsonl_and_tensorboard_when_installed():
    assert TrainConfig().log_to == ["jsonl", "tensorboard"]
