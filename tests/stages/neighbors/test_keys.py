"""The generation key names what is stored: rows chosen by an older selection rule are not today's."""
from cache.store import ClassNeighbors, NeighborStore, Provenance, generation_key
from stages.neighbors.config import NeighborsConfig
from stages.neighbors.keys import resolve_generation


def test_rows_stored_under_the_old_selection_rule_are_not_read_as_todays(tmp_path):
    # A local LLM folder: the key hashes its files, no engine runs.
    folder = tmp_path / "my-llm"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / "model.safetensors").write_bytes(b"\x01" * 64)
    cfg = NeighborsConfig(llm=str(folder), model_dir=str(tmp_path / "llm"))
    ident = resolve_generation(cfg, tmp_path)

    # Rule 1 keyed rows by the prompt template's own hash, and chose them with the class boundary against
    # whatever else was generated in the same call.
    old_hash = ident.template.prompt_hash(cfg.output_format, cfg.overgenerate)
    old = Provenance(llm_id=str(folder), llm_revision="local", llm_fingerprint=ident.llm["fingerprint"],
                     engine="vllm", engine_version="0", prompt_hash=old_hash, prompt_version="neighbors_v1",
                     num_neighbors=cfg.num_neighbors)
    store = NeighborStore.in_cache(tmp_path)
    store.put_phrases([ClassNeighbors("dog", ["barking dog"], old, {"temperature": 0.0}, 0)])
    assert old.generation_key == generation_key(ident.llm["fingerprint"], old_hash, cfg.num_neighbors)

    assert ident.key != old.generation_key
    assert store.classes_present(["dog"], old.generation_key) == {"dog"}
    assert store.classes_present(["dog"], ident.key) == set()  # generated again, never mixed in
    # Everything else that names the generation still counts: the same config gives the same key.
    assert resolve_generation(cfg, tmp_path).key == ident.key
