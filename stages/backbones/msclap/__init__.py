"""Kinds 'msclap-2022' and 'msclap-2023': MS-CLAP's encoders from its .pth checkpoints (adapter.py; random
checkpoints: random_model.py). The two years differ in their towers, hence in their signature keys and the
tokenizer of a random checkpoint; their files sit side by side in the hub repo microsoft/msclap."""
from stages.backbones.registry import CheckpointKind, ShortId, register


def _msclap(version: str, towers: str, signature_keys: tuple, tokenizer_style: str) -> CheckpointKind:
    file = f"CLAP_weights_{version}.pth"
    return CheckpointKind(
        name=f"msclap-{version}", item_modality="audio",
        summary=f"MS-CLAP {version} ({towers}); {file} from the hub repo microsoft/msclap ('msclap:{version}' "
                f"fetches it), a local .pth or a folder holding one",
        loader=f"stages.backbones.msclap.adapter:load_msclap_{version}",
        published=(ShortId(f"msclap:{version}", file, hub_repo="microsoft/msclap",
                           source=f"{file} from the hub repo microsoft/msclap"),),
        signature_keys=signature_keys, checkpoint_name=file,
        tokenizer=f"stages.backbones.checkpoint.random_model:{tokenizer_style}_style_tokenizer",
        random_state=f"stages.backbones.msclap.random_model:random_state_{version}")


register(_msclap("2022", "CNN14 audio + BERT text", ("caption_encoder.base.embeddings.word_embeddings.weight",
                                                      "audio_encoder.base.fc1.weight"), "bert"))
register(_msclap("2023", "HTS-AT audio + GPT-2 text", ("caption_encoder.base.wte.weight",
                                                        "audio_encoder.base.htsat.norm.weight"), "gpt2"))
