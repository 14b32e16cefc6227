"""The work: stage one (neighbors/), stage two (tuning/) and what both share
(backbones/: audio-language model adapters; data/: datasets and audio I/O)."""
