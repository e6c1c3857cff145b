"""A mutation fuzzer over RadLens' public loading API (see ``python -m tests.fuzz --help``)."""
