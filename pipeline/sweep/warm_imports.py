"""Imported once by the warm server (warm.py): what every `tune` cell would otherwise import itself.

Imports only: nothing here may start threads, touch CUDA or open files that forked cells would share.
"""
import torch  # noqa: F401
from transformers import ClapFeatureExtractor, ClapModel, ClapProcessor  # noqa: F401

import pipeline.protocols.runner  # noqa: F401
import pipeline.sweep.cell_process  # noqa: F401
import stages.audio_features  # noqa: F401
import stages.backbones.factory  # noqa: F401
import stages.data.datasets  # noqa: F401
import stages.tuning.learners  # noqa: F401
import stages.tuning.trainer  # noqa: F401
