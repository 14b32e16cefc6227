"""What the single-file checkpoint kinds (Pengi, MS-CLAP) share: files.py (locating and fetching a .pth),
read.py (safe reading, strict key conversion), detect.py (which kind a .pth is, by its signature keys),
base.py (the log-mel adapter base) and random_model.py (random checkpoints in an original's key layout)."""
