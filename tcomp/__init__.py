"""tcomp: a tensor compiler with autotuning."""

__version__ = "0.1.0"
