"""Kinds 'msclap-2022' and 'msclap-2023': MS-CLAP's encoders from its .pth checkpoints (adapter.py; random
checkpoints: random_model.py)."""
from stages.backbones.registry import CheckpointKind, ShortId, register

register(CheckpointKind(
    name="msclap-2022",
    summary="MS-CLAP 2022 (CNN14 audio + BERT text); CLAP_weights_2022.pth from the hub repo microsoft/msclap "
            "('msclap:2022' fetches it), a local .pth or a folder holding one",
    item_modality="audio",
    loader="stages.backbones.msclap.adapter:load_msclap_2022",
    published=(ShortId("msclap:2022", "CLAP_weights_2022.pth", hub_repo="microsoft/msclap",
                       source="CLAP_weights_2022.pth from the hub repo microsoft/msclap"),),
    signature_keys=("caption_encoder.base.embeddings.word_embeddings.weight", "audio_encoder.base.fc1.weight"),
    checkpoint_name="CLAP_weights_2022.pth",
    tokenizer="stages.backbones.checkpoint.random_model:bert_style_tokenizer",
    random_state="stages.backbones.msclap.random_model:random_state_2022",
))

register(CheckpointKind(
    name="msclap-2023",
    summary="MS-CLAP 2023 (HTS-AT audio + GPT-2 text); CLAP_weights_2023.pth from the hub repo microsoft/msclap "
            "('msclap:2023' fetches it), a local .pth or a folder holding one",
    item_modality="audio",
    loader="stages.backbones.msclap.adapter:load_msclap_2023",
    published=(ShortId("msclap:2023", "CLAP_weights_2023.pth", hub_repo="microsoft/msclap",
                       source="CLAP_weights_2023.pth from the hub repo microsoft/msclap"),),
    signature_keys=("caption_encoder.base.wte.weight", "audio_encoder.base.htsat.norm.weight"),
    checkpoint_name="CLAP_weights_2023.pth",
    tokenizer="stages.backbones.checkpoint.random_model:gpt2_style_tokenizer",
    random_state="stages.backbones.msclap.random_model:random_state_2023",
))
