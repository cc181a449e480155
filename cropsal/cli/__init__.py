"""The command-line interface: a thin layer over :mod:`cropsal.api` and the pipeline."""
