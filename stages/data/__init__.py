"""Datasets and audio I/O shared by both stages: dataset configs (specs), readers for PALM's and ESC-50's
layouts, audio loading/resampling, few-shot draws, base/new splits and the locally built demo dataset."""
