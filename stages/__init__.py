"""The work: stage one (neighbors/), stage two (tuning/) and what both share
(backbones/: audio-language model adapters; data/: datasets and audio I/O)."""

# Marks this package as sept-pipeline's `stages` layer: pipeline/__init__.py checks it (see docs/design.md,
# "Import names").
SEPT_LAYER = "stages"
