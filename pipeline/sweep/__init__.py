"""Sweeps: a grid of `tune` runs (datasets x methods x SEPT on/off x seeds x shots x config keys).

spec.py          the sweep file (TOML) -> a validated SweepSpec
grid.py          cells: names, identities, the `tune` arguments of each
stage_one.py     check the neighbor store once for every SEPT cell; generate-neighbors once for what is missing
cell_process.py  one cell in its own process, holding the cell's lock while `tune` runs
launch.py        start a cell process and classify its end (ran, failed, busy elsewhere, finished elsewhere)
executors.py     local (processes, one device each, N at once) and ray (ray.remote tasks)
runner.py        the whole sweep: skip finished, fill the store, run, wait for cells held elsewhere, status
"""
