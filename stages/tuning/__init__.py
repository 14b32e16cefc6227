"""Stage two: prompt tuning with the SEPT loss.

    sept_loss.py        L_se and the frozen margins (pure torch)
    prompt_tokens.py    CoOp's token layout: context slots spliced into each prompt's ids
    methods.py          the method table (torch-free): names, labels, learner classes, what each can do
    learners/           one module per method behind the contract in learners/base.py
    neighbor_bank.py    tokenized neighbors + margins: all of them, or a draw per step with its own generator
    neighbor_source.py  the neighbor store -> a NeighborBank (the only module here that reads the store)
    trainer.py          the training loop (towers under autocast, losses in float32), checkpoints, exact resume
    schedule.py         per-epoch lr: constant, or Dassl's cosine with a constant warm-up
    checkpoint.py       prompt-only safetensors + trainer state
    evaluate.py         scoring a learner on cached features

Everything except neighbor_source.py imports with torch alone (GPU machines have no polars or faiss).
Nothing is imported here, so `import stages.tuning.config` stays cheap.
"""
