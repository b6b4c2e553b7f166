"""HetComp: distillation from heterogeneous models for top-K recommendation (Kang et al., WWW 2023)."""

__version__ = "0.1.0"
