"""CLOSP: the model library (encoders, loss, assembly) and the stages that use it.

Library: ``channels``, ``config``, ``backbones``, ``weights``, ``encoders``, ``text``,
``location``, ``loss``, ``closp``. Stages: ``train`` (with ``options``, ``data``, ``fit``,
``checkpoint``, ``tracking``, ``run``), ``embed``, ``search`` (+ ``sheet``), ``evaluate``.
Importing this package is cheap; torch and transformers are imported by the submodules
that need them.
"""

import os

# Intel MKL (torch's CPU BLAS) picks kernels by the memory alignment of each call's buffers
# unless Conditional Numerical Reproducibility is on: on an AVX-512 CPU a resumed training run
# then drifted from the uninterrupted one in the last bits (tests/model/test_train.py), though
# every step's inputs were the same. STRICT keeps the CPU's fastest code path and makes the
# results independent of alignment and history. Read by MKL at its first call, so this is set
# before any model code runs; an explicit MKL_CBWR in the environment wins.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")
