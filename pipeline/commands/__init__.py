"""One module per CLI verb (or verb group); each exposes `register(cli)`."""
