"""s2d: System 2 distillation as Dagster software-defined assets."""

__version__ = "0.1.0"
