"""Result reports: every run's metrics.json -> the field's tables (Markdown + CSV) and pictures.

collect.py    finds and reads metrics files, one flat record per run, names the files it skips
tables.py     polars aggregations: base/new/HM per dataset and method, cross-dataset, few-shot
published.py  the published averages of docs/method.md, for `--compare`
render.py     Markdown and CSV writers
figures.py    matplotlib pictures (base vs new; the semantic-structure heat maps)
diagnostic.py the semantic-structure diagnostic: class-to-neighbor cosine similarities of a run
inspect.py    prompt interpretation: nearest vocabulary tokens of learned context vectors
build.py      the `report` command's work, end to end
"""
