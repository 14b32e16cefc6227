"""The neighbor store: Parquet tables of LLM neighbor phrases and their frozen embeddings, a FAISS
index per encoder, and a manifest that commits them atomically (docs/design.md: layout, provenance).

    from cache.store import NeighborStore, Provenance, ClassNeighbors
    store = NeighborStore.in_cache(cache_dir)          # <cache_dir>/neighbors
    todo = [c for c in names if c not in store.classes_present(names, prov.generation_key)]
    store.put_phrases([ClassNeighbors(c, phrases, prov, sampling, seed) ...])
    store.put_embeddings(texts, templates, encoder_fp, vectors)   # float32 [n, T, D], unit per template

Importing this package imports pyarrow and numpy, never faiss or torch.
"""

from cache.store.keys import generation_key, template_id, template_set_id
from cache.store.manifest import IndexEntry, Manifest, PartEntry
from cache.store.reading import MissingFromStore
from cache.store.records import ClassNeighbors, Provenance
from cache.store.schema import SCHEMA_VERSION
from cache.store.store import STORE_DIRNAME, NeighborStore, PutEmbeddingsResult, PutPhrasesResult

__all__ = [
    "SCHEMA_VERSION",
    "STORE_DIRNAME",
    "ClassNeighbors",
    "IndexEntry",
    "Manifest",
    "MissingFromStore",
    "NeighborStore",
    "PartEntry",
    "Provenance",
    "PutEmbeddingsResult",
    "PutPhrasesResult",
    "generation_key",
    "template_id",
    "template_set_id",
]
