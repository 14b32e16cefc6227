"""`sept-pipeline neighbors export|import|encode|control`: neighbor lists in and out of the store, a stored
generation embedded for another backbone, and the control neighbor sources. None of them needs the LLM."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from cache.errors import UserError
from pipeline.commands.common import config_options, emit_json, json_option

CACHE_DIR_HELP = "Cache folder holding the neighbor store (default $SEPT_CACHE_DIR, else ~/.cache/sept-pipeline)."
BACKBONE_HELP = ("Hub id, folder, checkpoint file or short id of the model whose frozen text tower encodes the "
                 "phrases (default: backbone.id); encode for every backbone you will tune with.")


def _cache_dir(fn):
    return click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                        help=CACHE_DIR_HELP)(fn)


def _store(cache_dir):
    from cache.store import NeighborStore

    return NeighborStore.in_cache(cache_dir)


def _dropped(dropped: dict) -> str:
    return ", ".join(f"{n} {rule}" for rule, n in sorted(dropped.items(), key=lambda kv: -kv[1])) or "none"


@click.command("export")
@click.option("--format", "fmt", type=click.Choice(["json", "jsonl", "parquet"]), default="json", show_default=True,
              help="json: {class: [phrases]} (CuPL/DCLIP); jsonl: one {\"class\", \"phrase\"} a line; parquet: "
                   "columns class, phrase, rank, and the stored embeddings of each row's class name and phrase "
                   "(class_embeddings, phrase_embeddings: per encoder fingerprint and template, bit-exact).")
@click.option("--generation", default="auto", show_default=True,
              help="Generation key or name; auto = the store's only generation.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File to write (and OUT.provenance.json beside it); default: standard output, no sidecar "
                   "(json and jsonl only).")
@_cache_dir
@json_option
def export_cmd(fmt, generation, out, cache_dir, as_json) -> None:
    """Write one generation's neighbor phrases, best first, as a file other tools read.

    Classes that cleaning left without a phrase are left out (the sidecar lists them). The sidecar
    FILE.provenance.json holds the generation key and names, LLM, engine, prompt hash, sampling, dates,
    counts and the file's sha256.

    \b
    Examples:
      sept-pipeline neighbors export --generation qwen7b-v3 --out esc50-neighbors.json
      sept-pipeline neighbors export --format jsonl --generation 3f2a9c01d4e5b6a7 > neighbors.jsonl
      sept-pipeline neighbors export --format parquet --out neighbors.parquet --json
    """
    from stages.neighbors.lists import export_generation

    if out is None and fmt == "parquet":
        raise UserError("--format parquet: give --out FILE (Parquet is not written to a terminal)")
    store = _store(cache_dir)
    chosen = store.resolve_generation(generation, [], [], "", where="--generation")
    result = export_generation(store, chosen.key, fmt, out)
    prov = result["provenance"]
    if out is None:
        sys.stdout.buffer.write(result["data"])
        sys.stdout.flush()
        return
    if as_json:
        emit_json(prov)
        return
    click.echo(f"{out}: {prov['classes']} classes, {prov['phrases']} phrases of generation {chosen.key} "
               f"({fmt}); provenance in {prov['provenance_file']}")


@click.command("import")
@click.argument("file", type=str)
@click.option("--name", required=True,
              help="Name of the new generation (a letter, then letters, digits or . _ + -): "
                   "tune --set sept.generation=NAME reads it.")
@click.option("--llm-label", default="", help="Who wrote the list, for its provenance (e.g. 'gpt-4o via CuPL').")
@click.option("--backbone", default=None, help=BACKBONE_HELP)
@click.option("--force-name", is_flag=True, help="Move --name to this list when it already names another "
                                                  "generation.")
@_cache_dir
@config_options
@json_option
def import_cmd(file, name, llm_label, backbone, force_name, cache_dir, cfg, as_json) -> None:
    """Store a neighbor list written elsewhere as a generation of its own, encoded by the backbone.

    FILE (or - for standard input): JSON {class: [phrases]} (CuPL, DCLIP), JSON Lines of
    {"class": ..., "phrase": ...}, or Parquet with columns class, phrase (rank). Stage one's cleaning
    rules run on it ([neighbors] max_words, max_chars, same_script, near_duplicate_cos) and what each
    rule dropped is reported. Limits: 1,000 phrases a class, 1,000 characters a phrase, 200 a class
    name, 20,000 classes, 64 MiB. A bad file is refused whole, one line, exit 2, the store untouched.
    The generation key is the file's sha256 plus the cleaning rules: importing the same file again
    stores nothing new. A Parquet file written by `neighbors export` carries the stored embeddings:
    those of the backbone's fingerprint under every template of text.templates are stored as they are
    (bit-exact); other texts are encoded, and a note says why the file's vectors were not used.

    \b
    Examples:
      sept-pipeline neighbors import cupl_esc50.json --name cupl-gpt4o --llm-label "gpt-4o (CuPL)"
      sept-pipeline neighbors import lists.jsonl --name mine --backbone laion/clap-htsat-unfused
      sept-pipeline neighbors export --generation qwen7b-v3 | sept-pipeline neighbors import - --name copy
      sept-pipeline neighbors import qwen7b-v3.parquet --name qwen7b-v3   # exported elsewhere: vectors kept
      sept-pipeline neighbors import lists.json --name mine --set neighbors.near_duplicate_cos=1.0 --json
    """
    from stages.neighbors.lists import import_list

    s = import_list(file, cfg, cache_dir, backbone, name, llm_label, force_name)
    if s["file_vectors"].startswith(("re-encoded", "partly")):  # the file's vectors were of no use: say why
        click.echo(f"note: {s['file']}: its vectors {s['file_vectors']}", err=True)
    if as_json:
        emit_json(s)
        return
    click.echo(f"{s['file']}: {s['classes']} classes, {s['phrases_in_file']} phrases; kept {s['phrases_kept']}, "
               f"dropped {_dropped(s['dropped'])} (embedding filter {s['embedding_filter']})")
    if s["classes_empty"]:
        click.echo(f"warning: cleaning left {len(s['classes_empty'])} classes without a phrase: "
                   f"{', '.join(s['classes_empty'][:5])}{' ...' if len(s['classes_empty']) > 5 else ''}", err=True)
    click.echo(f"generation {s['generation_key']} (name {s['generation_name']!r}): {s['classes_stored']} classes "
               f"stored, {s['texts_encoded']} texts encoded and {s['texts_adopted']} taken from the file for "
               f"{s['encoder_fingerprint']}; store {s['store']}")


@click.command("encode")
@click.option("--generation", required=True, help="Generation key or name whose texts to encode.")
@click.option("--dataset", default=None, help="Only the classes of this dataset (default: every class stored).")
@click.option("--classes-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Only the classes listed in this file, one a line.")
@click.option("--backbone", default=None, help=BACKBONE_HELP)
@_cache_dir
@config_options
@json_option
def encode_cmd(generation, dataset, classes_file, backbone, cache_dir, cfg, as_json) -> None:
    """Embed a stored generation's class names and phrases for a backbone (under the [text] templates).

    What `tune` needs when the store came from another machine or was made for another backbone; only
    texts the store lacks are encoded. No LLM.

    \b
    Examples:
      sept-pipeline neighbors encode --generation qwen7b-v3 --backbone laion/clap-htsat-unfused
      sept-pipeline neighbors encode --generation cupl-gpt4o --dataset esc50 --backbone pengi:base --json
    """
    from stages.neighbors.lists import encode_generation

    classes = None
    if dataset is not None or classes_file is not None:
        from pipeline.commands.class_lists import class_list

        classes, _ = class_list(dataset, classes_file)
    s = encode_generation(cfg, cache_dir, backbone, generation, classes)
    if as_json:
        emit_json(s)
        return
    click.echo(f"generation {s['generation_key']}: {s['texts']} texts of {s['classes']} classes, {s['texts_encoded']} "
               f"encoded for {s['encoder_fingerprint']} ({s['templates']} templates); index rows {s['index_rows']}")


@click.command("control")
@click.argument("kind", type=click.Choice(["random-words", "class-name"]))
@click.option("--like", "like", required=True,
              help="The real generation (key or name) whose classes and per-class counts the control copies.")
@click.option("--name", required=True, help="Name of the control generation (tune --set sept.generation=NAME).")
@click.option("--seed", type=int, default=0, show_default=True, help="random-words: seed of the draw.")
@click.option("--backbone", default=None, help=BACKBONE_HELP)
@click.option("--force-name", is_flag=True, help="Move --name here when it already names another generation.")
@_cache_dir
@config_options
@json_option
def control_cmd(kind, like, name, seed, backbone, force_name, cache_dir, cfg, as_json) -> None:
    """Store a control neighbor source shaped like a real generation: same classes, same counts.

    random-words: per phrase, as many random words as the real phrase has, from the English word list
    configs/controls/english-words.txt (WaffleCLIP's sanity baseline). class-name: the class name alone
    under the templates of configs/controls/class_name_templates.txt. Both are generations like any
    other (provenance control:KIND with its parameters): tune, sweeps, report and the diagnostic use
    them unchanged. The third control, the real neighbors without the class boundary, is a setting:
    --set sept.boundary_filter=false.

    \b
    Examples:
      sept-pipeline neighbors control random-words --like qwen7b-v3 --name qwen7b-v3-random --seed 1
      sept-pipeline neighbors control class-name --like qwen7b-v3 --name qwen7b-v3-classname --json
    """
    from stages.neighbors.controls import make_control

    s = make_control(kind, cfg, cache_dir, backbone, like, name, seed, force_name)
    if as_json:
        emit_json(s)
        return
    click.echo(f"control {kind} like {s['like']}: generation {s['generation_key']} (name {name!r}), "
               f"{s['classes']} classes, {s['phrases']} phrases; {s['texts_encoded']} texts encoded")


COMMANDS = (export_cmd, import_cmd, encode_cmd, control_cmd)
