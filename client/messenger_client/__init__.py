"""Client SDK and the `messenger` command line."""
