"""`sept-pipeline datasets ls|info|prepare`: what datasets are known, what a copy on disk holds, and the datasets built
locally from Debian packages (demo, wordnet-sounds, gcide-sounds)."""
from __future__ import annotations

from pathlib import Path

import click

from cache.errors import UserError
from pipeline.commands.common import config_options, emit_json, json_option


def register(cli) -> None:
    @cli.group("datasets")
    def datasets_group() -> None:
        """Dataset configs (configs/datasets/*.toml) and the datasets built locally (demo, the text proxy).

        \b
        Examples:
          sept-pipeline datasets ls
          sept-pipeline datasets prepare demo --root data/
          sept-pipeline datasets info demo --data-root data/
        """

    @datasets_group.command("ls")
    @json_option
    def ls(as_json: bool) -> None:
        """List known datasets: classes, layout, official folds and declared overlaps (from their configs).

        \b
        Examples:
          sept-pipeline datasets ls
          sept-pipeline datasets ls --json
        """
        from stages.data.specs import dataset_spec, list_datasets

        rows = []
        for name in list_datasets():
            s = dataset_spec(name)
            rows.append({"name": s.name, "display_name": s.display_name, "num_classes": s.num_classes,
                         "layout": s.layout, "folds": list(s.folds), "overlaps": list(s.overlaps),
                         "task": s.task, "config": str(s.path)})
        if as_json:
            emit_json(rows)
            return
        click.echo(f"{'name':<16}{'classes':>8}  {'layout':<17}{'folds':>6}  task")
        for r in rows:
            folds = len(r["folds"]) or "-"
            click.echo(f"{r['name']:<16}{r['num_classes']:>8}  {r['layout']:<17}{folds:>6}  {r['task']}")

    @datasets_group.command("info")
    @click.argument("name")
    @click.option("--data-root", required=True, type=click.Path(path_type=Path),
                  help="The dataset folder, or a folder holding it (e.g. data/ holding data/demo/).")
    @click.option("--fold", default=None, help="Official fold to use as test split (default: data.fold).")
    @config_options
    @json_option
    def info(name: str, data_root: Path, fold: str | None, cfg, as_json: bool) -> None:
        """Load a dataset from disk and print its clips per split and class.

        Checks the copy: every CSV row must name a known class and an existing audio file.

        \b
        Examples:
          sept-pipeline datasets info demo --data-root data/
          sept-pipeline datasets info esc50 --data-root /data/Audio-Datasets --fold fold2 --json
        """
        from stages.data.clips import classes_without_train_clips, clips_per_class
        from stages.data.datasets import load_dataset

        ds = load_dataset(name, data_root, fold=cfg.data.fold if fold is None else fold)
        train = clips_per_class(ds.train, ds.classnames)
        test = clips_per_class(ds.test, ds.classnames)
        summary = {"name": ds.name, "root": str(ds.root), "layout": ds.layout, "fold": ds.fold,
                   "num_classes": len(ds.classnames), "num_train": len(ds.train), "num_test": len(ds.test),
                   "classes": [{"classname": c, "train": train[c], "test": test[c]} for c in ds.classnames],
                   "classes_without_train_clips": classes_without_train_clips(ds)}
        if as_json:
            emit_json(summary)
            return
        click.echo(f"{ds.name} at {ds.root} (layout {ds.layout}{', test = ' + ds.fold if ds.fold else ''}): "
                   f"{len(ds.train)} train / {len(ds.test)} test clips, {len(ds.classnames)} classes")
        width = max(len(c) for c in ds.classnames)
        click.echo(f"  {'class':<{width}}  {'train':>6}  {'test':>6}")
        for c in ds.classnames:
            click.echo(f"  {c:<{width}}  {train[c]:>6}  {test[c]:>6}")
        if summary["classes_without_train_clips"]:
            click.echo(f"warning: no training clip for {summary['classes_without_train_clips']}", err=True)

    @datasets_group.command("prepare")
    @click.argument("name")
    @click.option("--root", default=None, type=click.Path(file_okay=False, path_type=Path),
                  help="Folder to build the dataset in (it is written to ROOT/NAME).")
    @click.option("--out", default=None, type=click.Path(file_okay=False, path_type=Path),
                  help="The dataset folder itself (instead of --root: written to OUT, whatever its name).")
    @click.option("--force", is_flag=True, help="Rebuild even if a complete copy exists (an untouched older build "
                                                "of the same dataset is rebuilt without it).")
    @json_option
    def prepare(name: str, root: Path | None, out: Path | None, force: bool, as_json: bool) -> None:
        """Build a dataset that can be made locally from Debian packages. A complete existing copy is reused.

        \b
        demo            113 real recordings in 10 classes from sonic-pi-samples and openttd-opensfx
                        (PALM's layout, 16 kHz WAV, attribution per clip).
        wordnet-sounds  a text proxy with real semantics from WordNet 3.0 (wordnet-base): 49 classes of
                        things that make sounds, 32-60 hyponym "lemma: gloss" items each, with the class's
                        own words removed (class/item.txt + train.csv/test.csv; configs/datasets/wordnet-sounds.toml).
                        Prints what each masking rule changed (also in the folder's manifest.json).
        gcide-sounds    the same classes and hyponyms, items written from GCIDE's definitions (dict-gcide,
                        GPL) instead of WordNet's glosses, masked by the same rule: wordnet-sounds' cross-
                        dataset (domain-shift) target (configs/datasets/gcide-sounds.toml).

        \b
        Examples:
          sept-pipeline datasets prepare demo --root data/
          sept-pipeline datasets prepare wordnet-sounds --root data/
          sept-pipeline datasets prepare wordnet-sounds --out /tmp/ws --force --json
          sept-pipeline datasets prepare gcide-sounds --root data/
        """
        from stages.data.demo import NAME as DEMO, build_demo
        from stages.data.gcide_sounds import NAME as GCIDE, build_gcide_sounds
        from stages.data.wordnet_sounds import NAME as WORDNET, build_wordnet_sounds, rule_lines

        builders = {DEMO: build_demo, WORDNET: build_wordnet_sounds, GCIDE: build_gcide_sounds}
        builder = builders.get(name.lower())
        if builder is None:
            raise UserError(f"datasets prepare {name!r}: only {', '.join(repr(b) for b in builders)} can be built "
                            f"here (PALM's datasets are downloaded: see github.com/asif-hanif/palm DATASETS.md, "
                            f"then use --data-root)")
        if (root is None) == (out is None):
            raise UserError(f"datasets prepare {name}: give exactly one of --root DIR (writes DIR/{name.lower()}) "
                            f"or --out DIR (writes DIR)")
        parent, folder = (root, name.lower()) if out is None else (out.expanduser().absolute().parent, out.name)
        kwargs = {"progress": not as_json} if builder is build_demo else {}
        result = builder(parent, force=force, folder_name=folder, **kwargs)
        if as_json:
            emit_json(result)
            return
        verb = "reused" if result["reused"] else "built"
        where = result["path"]
        if result.get("replaced") is not None:
            verb, where = "rebuilt", f"{where} (it held rule version {result['replaced'].get('rule_version', '?')})"
        unit = "clips" if builder is build_demo else "items"
        click.echo(f"{verb} {where}: {result['num_train']} train / {result['num_test']} test {unit}, "
                   f"{len(result['classes'])} classes")
        if result.get("rules"):
            for line in rule_lines(result["rules"], result["split"].get("rule", "")):
                click.echo(f"  {line}")
