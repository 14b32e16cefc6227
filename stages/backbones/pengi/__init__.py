"""Kind 'pengi': Pengi's encoders from its .pth checkpoint (adapter.py; random checkpoints: random_model.py)."""
from stages.backbones.registry import CheckpointKind, ShortId, register

register(CheckpointKind(
    name="pengi",
    summary="Pengi's encoders (CLIP text + HTS-AT audio, PALM's backbone); base.pth from Zenodo record 8387083 "
            "('pengi:base' downloads it once), a local .pth or a folder holding one",
    item_modality="audio",
    loader="stages.backbones.pengi.adapter:load_pengi",
    published=(ShortId("pengi:base", "base.pth", url="https://zenodo.org/records/8387083/files/base.pth",
                       folder="pengi-base", source="base.pth from Zenodo record 8387083 (Pengi)"),),
    # CLIP's text tower (MS-CLAP 2023 has GPT-2's wte) and HTS-AT (MS-CLAP 2022 has CNN14's fc1).
    signature_keys=("caption_encoder.base.embeddings.token_embedding.weight", "audio_encoder.base.htsat.norm.weight"),
    checkpoint_name="pengi.pth",
    tokenizer="stages.backbones.checkpoint.random_model:clip_style_tokenizer",
    random_state="stages.backbones.pengi.random_model:random_state",
))
