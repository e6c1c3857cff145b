"""The ``radlens`` command line. Headless subcommands never import Qt."""
