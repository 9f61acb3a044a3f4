"""CLOSP: the model library (encoders, loss, assembly) and the stages that use it.

Library: ``channels``, ``config``, ``backbones``, ``weights``, ``encoders``, ``text``,
``location``, ``loss``, ``closp``. Stages: ``train`` (with ``options``, ``data``, ``fit``,
``checkpoint``, ``tracking``, ``run``), ``embed``, ``search`` (+ ``sheet``), ``evaluate``.
Importing this package is cheap; torch and transformers are imported by the submodules
that need them.
"""
