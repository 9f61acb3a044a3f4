"""Scene sources: every imagery archive behind one small contract (``base.SceneSource``)."""
