"""Kind 'clap': LAION CLAP through transformers' ClapModel (adapter.py), and random CLAPs (random_model.py)."""
from stages.backbones.registry import BackboneKind, register

register(BackboneKind(
    name="clap",
    summary="LAION CLAP through transformers' ClapModel: a hub id (laion/clap-htsat-unfused) or a "
            "save_pretrained folder (e.g. `backbones make-random`)",
    item_modality="audio",
    loader="stages.backbones.clap.adapter:load_clap",
    detect="stages.backbones.locate:is_clap_folder",
    random_model="stages.backbones.clap.random_model:make_random_clap",
))
