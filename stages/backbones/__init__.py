"""Audio-language model backbones: the adapter interface (base.py), the kind registry (registry.py), loading
(factory.py), fingerprints, and one package per kind.

    clap/        LAION CLAP through transformers' ClapModel (+ its random maker)
    text_dual/   a sentence encoder as both towers (items are texts)
    pengi/       Pengi's encoders (a .pth checkpoint)
    msclap/      MS-CLAP 2022 and 2023 (.pth checkpoints)
    checkpoint/  what the .pth kinds share: locating and fetching files, safe reading and key conversion,
                 the log-mel adapter base, random checkpoints in an original's key layout
    nets/        audio networks built here: HTS-AT's layout on transformers' ClapAudioModel, CNN14

Importing the kind packages registers their kinds (each package's __init__.py), in this order; the registry
lists them so. They are torch-free: a kind's heavy modules are named as "module:function" strings.
"""
from stages.backbones import clap, text_dual, pengi, msclap  # noqa: F401,I001 - registers the kinds, in this order
