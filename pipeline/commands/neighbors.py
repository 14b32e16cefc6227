"""`sept-pipeline generate-neighbors` and `sept-pipeline neighbors ls|show|search|verify|quality`.

Stage one's face. Nothing heavy is imported at module level: a warm `generate-neighbors` rerun that
finds everything in the store must not import torch, transformers, vLLM or faiss.
"""
from __future__ import annotations

from pathlib import Path

import click

from cache.errors import UserError
from pipeline.commands.class_lists import class_list as _class_list
from pipeline.commands.common import backbone_help, config_options, emit_json, json_option


def cache_dir_option(fn):
    return click.option(
        "--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
        help="Cache folder holding the neighbor store (default $SEPT_CACHE_DIR, else ~/.cache/sept-pipeline).",
    )(fn)


def _with_task(cfg, dataset: str | None, task: str | None):
    """(cfg with --task as neighbors.task, the dataset config's task): what prompts with {task} are given."""
    from stages.neighbors.keys import dataset_task

    if task is not None:
        cfg = cfg.replace("neighbors", task=task.strip())
    return cfg, dataset_task(dataset)


def _dtype_of(status: dict) -> str:
    """' in float32': the LLM's dtype as its rows record it (in the sampling JSON), '' for rows without it."""
    import json

    try:
        dtype = json.loads(status.get("sampling") or "{}").get("dtype")
    except ValueError:
        dtype = None
    return f" in {dtype}" if dtype else ""


def _store(cache_dir):
    from cache.store import NeighborStore

    return NeighborStore.in_cache(cache_dir)


def _key_of(store, value: str | None) -> str | None:
    """A --key given as a generation's name -> its key (a key, or None, as given)."""
    return store.names().get(value, value) if value else value


def _apply_flags(cfg, llm, backend, num_neighbors, prompt):
    changes = {k: v for k, v in (("llm", llm), ("backend", backend), ("num_neighbors", num_neighbors),
                                 ("prompt", prompt)) if v is not None}
    return cfg.replace("neighbors", **changes) if changes else cfg


def _print_summary(s: dict) -> None:
    click.echo(f"classes: {s['classes']} ({s['classes_generated']} generated, {s['classes_reused']} reused); "
               f"LLM requests: {s['llm_requests']} in {s['llm_rounds']} round(s)")
    click.echo(f"texts: {s['phrases_encoded']} encoded, {s['phrases_reused']} reused; "
               f"{s['phrases_kept']} neighbors kept; index rows: {s['index_rows']}")
    named = f" (name {s['generation_name']!r})" if s.get("generation_name") else ""
    click.echo(f"store: {s['store']}  generation key: {s['generation_key']}{named}  encoder: {s['encoder_fingerprint']}")
    click.echo(f"done in {s['seconds']:.1f} s")


def register(cli) -> None:
    @cli.command("generate-neighbors")
    @click.option("--dataset", default=None, help="Dataset whose class names to use (see `sept-pipeline datasets ls`).")
    @click.option("--classes-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
                  help="Text file with one class name a line (instead of --dataset).")
    @click.option("--backbone", default=None,
                  help=backbone_help("the audio-language model whose frozen text tower encodes the neighbors"))
    @click.option("--llm", default=None, help="LLM hub id or local folder (default: neighbors.llm = "
                                               "packaged:smollm2-135m-instruct).")
    @click.option("--backend", type=click.Choice(["vllm", "transformers"]), default=None,
                  help="Generation engine (default: neighbors.backend = vllm).")
    @click.option("--num-neighbors", type=int, default=None, help="Neighbors kept per class, N (default: 8).")
    @click.option("--prompt", default=None, help="Prompt template file (default: neighbors.prompt).")
    @click.option("--task", default=None,
                  help="The classes' task, context for the LLM in prompts with {task} (e.g. 'music genre "
                       "classification'); sets neighbors.task; default: the dataset config's task with "
                       "--dataset. Part of the generation key.")
    @click.option("--verbose", is_flag=True,
                  help="Show the LLM engine's own log lines (vLLM's INFO/WARNING) here instead of appending them "
                       "to CACHE_DIR/logs/llm-worker.log.")
    @click.option("--name", default=None,
                  help="Name this generation in the store (a letter, then letters, digits or . _ + -), so that "
                       "`tune --set sept.generation=NAME` reads it on any machine; unique per store.")
    @click.option("--force-name", is_flag=True,
                  help="Move --name to this generation when it already names another one (that generation keeps "
                       "its rows and key).")
    @cache_dir_option
    @config_options
    @json_option
    def generate_neighbors(dataset, classes_file, backbone, llm, backend, num_neighbors, prompt, task, verbose,
                           name, force_name, cache_dir, cfg, as_json) -> None:
        """Write semantic neighbors of every class name into the neighbor store, encoded by the backbone.

        Only classes missing under the generation key (LLM fingerprint, prompt hash, N) reach the LLM,
        in one batched call per round; only texts without an embedding for this encoder are encoded. A
        rerun with the same inputs starts no engine at all. Classes still short of N neighbors after
        the retries are listed on stderr (and in --json as classes_short). The engine's own log lines go
        to CACHE_DIR/logs/llm-worker.log (the terminal shows our progress lines), unless --verbose.

        \b
        Examples:
          sept-pipeline generate-neighbors --dataset esc50 --backbone laion/clap-htsat-unfused
          sept-pipeline generate-neighbors --classes-file classes.txt --backbone models/tiny-clap --json
          sept-pipeline generate-neighbors --classes-file genres.txt --task "music genre classification"
          sept-pipeline generate-neighbors --dataset esc50 --llm Qwen/Qwen2.5-7B-Instruct \\
              --set neighbors.tensor_parallel_size=2
          sept-pipeline generate-neighbors --dataset demo --backbone models/tiny-clap \\
              --llm Qwen/Qwen2.5-7B-Instruct --num-neighbors 16 --cache-dir /scratch/sept-cache
          sept-pipeline generate-neighbors --dataset esc50 --backend transformers --set neighbors.temperature=0.7
          sept-pipeline generate-neighbors --dataset demo --backbone models/tiny-clap --verbose
          sept-pipeline generate-neighbors --dataset esc50 --llm Qwen/Qwen2.5-7B-Instruct --name qwen7b-v3
        """
        from stages.neighbors.generation import generate_neighbors as run

        if force_name and name is None:
            raise UserError("--force-name: give the --name to move")
        classes, _ = _class_list(dataset, classes_file)
        cfg = _apply_flags(cfg, llm, backend, num_neighbors, prompt)
        cfg, dataset_task = _with_task(cfg, dataset, task)
        summary = run(classes, cfg, cache_dir, backbone=backbone, verbose=verbose, task=dataset_task, name=name,
                      force_name=force_name)
        if summary["classes_short"]:
            counts = summary["classes_short_counts"]
            listing = ", ".join(f"{c} ({counts[c]}/{cfg.neighbors.num_neighbors})" for c in summary["classes_short"])
            click.echo(f"warning: {len(counts)} classes have fewer than {cfg.neighbors.num_neighbors} neighbors: "
                       f"{listing}", err=True)
        if as_json:
            emit_json(summary)
        else:
            _print_summary(summary)

    @cli.group("neighbors")
    def neighbors_group() -> None:
        """Inspect and audit the neighbor store; neighbor lists in and out; control neighbor sources.

        \b
        Examples:
          sept-pipeline neighbors ls
          sept-pipeline neighbors show "dog" --json
          sept-pipeline neighbors search "barking" --backbone models/tiny-clap
          sept-pipeline neighbors verify
          sept-pipeline neighbors repair
          sept-pipeline neighbors quality --dataset esc50
          sept-pipeline neighbors export --generation qwen7b-v3 --out neighbors.json
          sept-pipeline neighbors import cupl_esc50.json --name cupl-gpt4o --llm-label "gpt-4o (CuPL)"
          sept-pipeline neighbors encode --generation qwen7b-v3 --backbone laion/clap-htsat-unfused
          sept-pipeline neighbors control random-words --like qwen7b-v3 --name qwen7b-v3-random
        """

    from pipeline.commands.neighbor_lists import COMMANDS

    for command in COMMANDS:
        neighbors_group.add_command(command)

    @neighbors_group.command("ls")
    @cache_dir_option
    @json_option
    def ls(cache_dir, as_json) -> None:
        """List the store's generation keys (LLM, prompt, N, counts), encoders and indexes.

        \b
        Examples:
          sept-pipeline neighbors ls
          sept-pipeline neighbors ls --cache-dir /scratch/sept-cache --json
        """
        store = _store(cache_dir)
        summary = store.summary()
        keys = store.generation_keys()
        names = store.names()
        for k in keys:
            k["names"] = sorted(n for n, key in names.items() if key == k["generation_key"])
        if as_json:
            emit_json({"store": str(store.root), "summary": summary, "generation_keys": keys, "names": names})
            return
        click.echo(f"store: {store.root}")
        if not keys:
            click.echo("(empty: run `sept-pipeline generate-neighbors` or `neighbors import` first)")
        for k in keys:
            named = f" ({', '.join(k['names'])})" if k["names"] else ""
            click.echo(f"key {k['generation_key']}{named}: {k['classes']} classes, {k['phrases']} phrases, "
                       f"{len(k['short_classes'])} short; llm {k['llm_id']} ({k['engine']} {k['engine_version']}), "
                       f"prompt {k['prompt_version']} {k['prompt_hash']}, N={k['num_neighbors']}")
        for e in store.indexes():
            click.echo(f"index {e.encoder_fingerprint}: {e.rows} texts x {e.dim}-d (template set {e.template_set_id})")

    @neighbors_group.command("show")
    @click.argument("classname")
    @click.option("--key", "generation_key", default=None,
                  help="Only this generation, by key or name (default: all).")
    @cache_dir_option
    @json_option
    def show(classname, generation_key, cache_dir, as_json) -> None:
        """Print a class's stored neighbors, best first, with their provenance.

        \b
        Examples:
          sept-pipeline neighbors show dog
          sept-pipeline neighbors show "church bells" --key 3f2a9c01d4e5b6a7 --json
        """
        store = _store(cache_dir)
        generation_key = _key_of(store, generation_key)
        rows = store.phrase_rows([classname], generation_key)
        status = store.class_status([classname], generation_key)
        if not status:
            raise UserError(f"class {classname!r}: not in the store {store.root}"
                            + (f" under key {generation_key}" if generation_key else "")
                            + " (see `sept-pipeline neighbors ls`)")
        if as_json:
            emit_json({"class": classname, "status": status, "phrases": rows})
            return
        for st in status:
            key = st["generation_key"]
            click.echo(f"{classname} [key {key}, {st['num_kept']}/{st['num_neighbors']} kept"
                       f"{', SHORT' if st['short'] else ''}; {st['llm_id']} via {st['engine']} {st['engine_version']}"
                       f"{_dtype_of(st)}, "
                       f"prompt {st['prompt_version']}, {st['rounds']} round(s)]")
            for r in (r for r in rows if r["generation_key"] == key):
                extra = "".join([f", votes {r['votes']}" if r.get("votes") is not None else "",
                                 f", P(yes) {r['verify_score']:.3f}" if r.get("verify_score") is not None else ""])
                click.echo(f"  {r['rank']:>2}  {r['phrase']}   (seed {r['seed']}{extra})")

    @neighbors_group.command("search")
    @click.argument("text")
    @click.option("-k", "k", type=int, default=10, show_default=True, help="How many stored texts to return.")
    @click.option("--backbone", default=None,
                  help="Hub id, folder, checkpoint file or short id of the encoder whose index to search (default: "
                       "backbone.id when set, else the store's only encoder; a store with several names them).")
    @cache_dir_option
    @config_options
    @json_option
    def search(text, k, backbone, cache_dir, cfg, as_json) -> None:
        """Find the stored texts (class names and neighbors) nearest to TEXT through the FAISS index.

        TEXT is embedded like the stored texts: the backbone's frozen text tower under every template,
        averaged. A TEXT already in the store is looked up, with no model loaded.

        \b
        Examples:
          sept-pipeline neighbors search "barking" --backbone models/tiny-clap
          sept-pipeline neighbors search dog -k 5 --json     # the store's only encoder
        """
        from stages.neighbors.inspection import search_store

        if k < 1:
            raise UserError(f"-k {k}: must be at least 1")
        if backbone is None and cfg.backbone.id != type(cfg.backbone)().id:  # set by --config/--set
            backbone = cfg.backbone.id
        result = search_store(text, k, cfg, cache_dir, backbone)
        if as_json:
            emit_json(result)
            return
        click.echo(f"nearest to {text!r} ({result['encoder_fingerprint']}, query {result['query_from']}):")
        for hit in result["hits"]:
            owners = ", ".join(hit["neighbor_of"]) or "-"
            tag = " [class]" if hit["is_class"] else ""
            click.echo(f"  {hit['score']:.4f}  {hit['text']}{tag}   neighbor of: {owners}")

    @neighbors_group.command("verify")
    @cache_dir_option
    @json_option
    def verify(cache_dir, as_json) -> None:
        """Check that the manifest, every Parquet table and every FAISS index agree; exit 1 if not.

        \b
        Examples:
          sept-pipeline neighbors verify
          sept-pipeline neighbors verify --cache-dir /scratch/sept-cache --json
        """
        store = _store(cache_dir)
        problems = store.verify()
        leftovers = [str(p) for p in store.leftovers()]
        if as_json:
            emit_json({"store": str(store.root), "ok": not problems, "problems": problems,
                       "leftovers": leftovers})
        else:
            for p in problems:
                click.echo(f"problem: {p}")
            click.echo(f"{store.root}: " + ("ok" if not problems else f"{len(problems)} problem(s)")
                       + (f"; {len(leftovers)} leftover file(s) of interrupted writes" if leftovers else ""))
        if problems:
            raise SystemExit(1)

    @neighbors_group.command("repair")
    @cache_dir_option
    @json_option
    def repair(cache_dir, as_json) -> None:
        """Set damaged store files aside (under damaged/), keep what is consistent, rebuild the indexes.

        What was lost is generated or encoded again by the next `generate-neighbors`.

        \b
        Examples:
          sept-pipeline neighbors verify || sept-pipeline neighbors repair
          sept-pipeline neighbors repair --cache-dir /scratch/sept-cache --json
        """
        store = _store(cache_dir)
        actions = store.repair()
        problems = store.verify()
        if as_json:
            emit_json({"store": str(store.root), "actions": actions, "ok": not problems, "problems": problems})
        else:
            for a in actions or ["nothing to repair"]:
                click.echo(a)
        if problems:
            raise SystemExit(1)

    @neighbors_group.command("quality")
    @click.option("--dataset", default=None, help="Score the classes of this dataset.")
    @click.option("--classes-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
                  help="Score the classes listed in this file (one a line).")
    @click.option("--key", "generation_key", default=None,
                  help="Generation to score, by key or name (default: the one the config's [neighbors] section "
                       "gives).")
    @click.option("--reference", default=None, help="Reference sentence-transformers id or folder "
                                                      "(default: packaged:all-minilm-l6-v2).")
    @click.option("--task", default=None, help="The task the neighbors were generated with (see generate-neighbors "
                                                 "--task); finds their generation key.")
    @click.option("--per-class/--no-per-class", default=True, show_default=True,
                  help="Print the per-class table, then the worst classes with their phrases.")
    @click.option("--worst", type=int, default=10, show_default=True,
                  help="How many of the worst classes (lowest precision, then own similarity) --per-class lists "
                       "with their phrases.")
    @cache_dir_option
    @config_options
    @json_option
    def quality(dataset, classes_file, generation_key, reference, task, per_class, worst, cache_dir, cfg,
                as_json) -> None:
        """Score stored neighbors with a reference text encoder independent of the backbone.

        Per class and overall: precision (share of neighbors whose nearest class name is their own),
        own similarity (mean cosine to their class name) and diversity (1 - mean pairwise cosine).
        Without --dataset/--classes-file, every class stored under the key is scored.

        \b
        Examples:
          sept-pipeline neighbors quality --dataset esc50
          sept-pipeline neighbors quality --classes-file classes.txt --key 3f2a9c01d4e5b6a7 --json
          sept-pipeline neighbors quality --dataset esc50 --reference sentence-transformers/all-mpnet-base-v2
          sept-pipeline neighbors quality --dataset esc50 --worst 5
        """
        from stages.neighbors.inspection import quality_report
        from stages.neighbors.quality import DEFAULT_REFERENCE

        classes = None
        if dataset is not None or classes_file is not None:
            classes, _ = _class_list(dataset, classes_file)
        cfg, dataset_task = _with_task(cfg, dataset, task)
        generation_key = _key_of(_store(cache_dir), generation_key)
        report = quality_report(cfg, cache_dir, classes, generation_key, reference or DEFAULT_REFERENCE,
                                task=dataset_task)
        if as_json:
            emit_json(report)
            return
        o = report["overall"]
        if per_class:
            width = max(len(r["class"]) for r in report["per_class"])
            click.echo(f"{'class':<{width}}  {'n':>3}  {'prec':>5}  {'own':>5}  {'div':>5}")
            for r in report["per_class"]:
                f = lambda v: "  -  " if v is None else f"{v:5.2f}"  # noqa: E731
                click.echo(f"{r['class']:<{width}}  {r['neighbors']:>3}  {f(r['precision'])}  "
                           f"{f(r['own_similarity'])}  {f(r['diversity'])}")
            from stages.neighbors.quality import worst_classes

            bad = worst_classes(report["per_class"], worst)
            if bad:
                click.echo(f"worst {len(bad)} classes, with their phrases (* = nearer another class name):")
            for r in bad:
                marked = ", ".join(p + ("" if ok else "*") for p, ok in zip(r["phrases"], r["hits"]))
                click.echo(f"  {r['class']} ({f(r['precision']).strip()}): {marked or '(none)'}"
                           + (f"  -> {', '.join(r['confused_with'])}" if r.get("confused_with") else ""))
        fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
        click.echo(f"key {report['generation_key']} ({report['reference']}): {o['classes']} classes, "
                   f"{o['neighbors']} neighbors, precision {fmt(o['precision'])} "
                   f"(micro {fmt(o['precision_micro'])}), own similarity {fmt(o['own_similarity'])}, "
                   f"diversity {fmt(o['diversity'])}, empty {o['classes_empty']}, short {o.get('classes_short', 0)}")
