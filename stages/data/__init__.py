"""Datasets and audio I/O shared by both stages: dataset configs (specs), readers for PALM's and ESC-50's
layouts, audio loading/resampling, text items (item_text.py), few-shot draws, base/new splits and the datasets
built locally from Debian packages: the demo (demo.py) and the text proxy, WordNet-Sounds (wordnet.py reads
WordNet's nouns, wordnet_sounds.py builds the dataset, class_words.py masks a class's words) and GCIDE-Sounds
(gcide.py reads GCIDE's dictd files, gcide_sounds.py builds the dataset)."""
