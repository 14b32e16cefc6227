"""Audio networks of the checkpoint kinds, in their originals' module names: HTS-AT's key layout on
transformers' ClapAudioModel (htsat.py) and CNN14 (cnn14.py)."""
