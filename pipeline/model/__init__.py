"""The CLOSP model library: encoders, loss and model assembly (no training loop here).

Importing this package is cheap; torch and transformers are imported by the submodules
that need them.
"""
