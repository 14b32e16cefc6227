"""The generation key names what is stored: rows chosen by an older selection rule are not today's."""
import pytest

from cache.errors import UserError
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


def _local_llm(tmp_path):
    folder = tmp_path / "my-llm"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / "model.safetensors").write_bytes(b"\x01" * 64)
    return folder


def test_the_task_context_changes_the_key_of_a_prompt_with_task_only(tmp_path):
    folder = _local_llm(tmp_path)
    v2 = NeighborsConfig(llm=str(folder), model_dir=str(tmp_path / "llm"), prompt="configs/prompts/neighbors_v2.txt")
    genre = resolve_generation(v2, tmp_path, "music genre classification")
    event = resolve_generation(v2, tmp_path, "sound event classification")
    assert genre.key != event.key and genre.task == "music genre classification"
    # neighbors.task (what --task sets) wins over the dataset's task
    forced = NeighborsConfig(**{**v2.__dict__, "task": "sound event classification"})
    assert resolve_generation(forced, tmp_path, "music genre classification").key == event.key
    # the task text reaches the LLM; no other class's name does
    msgs = genre.template.messages("rock", "lines", 16, genre.task)
    assert "music genre classification" in msgs[0]["content"] and "{task}" not in str(msgs)
    # a prompt without {task} (v1) keys the same whatever the dataset's task
    v1 = NeighborsConfig(llm=str(folder), model_dir=str(tmp_path / "llm"))
    assert resolve_generation(v1, tmp_path, "music genre classification").key == resolve_generation(v1, tmp_path).key
    assert resolve_generation(v1, tmp_path, "x").task == ""


def test_voting_and_verification_settings_are_part_of_the_key(tmp_path):
    folder = _local_llm(tmp_path)
    base = dict(llm=str(folder), model_dir=str(tmp_path / "llm"))
    keys = {resolve_generation(NeighborsConfig(**base, **kw), tmp_path).key
            for kw in ({}, {"samples": 4}, {"samples": 4, "sample_temperature": 1.0}, {"verify_threshold": 0.5})}
    assert len(keys) == 4
    # settings that only matter when voting is on do not split the key when it is off
    assert (resolve_generation(NeighborsConfig(**base, sample_temperature=1.0), tmp_path).key
            == resolve_generation(NeighborsConfig(**base), tmp_path).key)


@pytest.mark.parametrize("kw, match", [
    ({"samples": 0}, "neighbors.samples"),
    ({"verify_threshold": 1.5}, "neighbors.verify_threshold"),
    ({"tensor_parallel_size": 0}, "neighbors.tensor_parallel_size"),
    ({"tensor_parallel_size": 2, "backend": "transformers"}, "only the vllm backend"),
    ({"samples": 3, "backend": "transformers"}, "needs the vllm backend"),
])
def test_bad_scoring_and_parallel_settings_are_one_line_errors(kw, match):
    with pytest.raises(UserError, match=match):
        NeighborsConfig(**kw)


def test_tensor_parallel_size_and_task_reach_the_worker_request(tmp_path):
    from pipeline.config_loader import load_config
    from stages.neighbors.worker_launch import worker_request

    folder = _local_llm(tmp_path)
    cfg = load_config(None, [f'neighbors.llm="{folder}"', f'neighbors.model_dir="{tmp_path / "llm"}"',
                             "neighbors.tensor_parallel_size=2", 'neighbors.prompt="configs/prompts/neighbors_v2.txt"'])
    ident = resolve_generation(cfg.neighbors, tmp_path, "vocal sound classification")
    req = worker_request(cfg, ident, ["laughter"], tmp_path)
    assert req["tensor_parallel_size"] == 2
    assert "vocal sound classification" in req["messages"]["laughter"][0][0]["content"]  # set 0, system turn
