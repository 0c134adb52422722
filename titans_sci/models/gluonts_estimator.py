"""The GluonTS integration's old address (until 2026-12-06; now :mod:`titans_sci.gluonts`).

A predictor serialized then names ``titans_sci.models.gluonts_estimator.TitansPredictor`` in
its ``gluonts-config.json``, and GluonTS' ``Predictor.deserialize`` imports the class by that
name, so this module stays as an alias for those folders. New code imports
:mod:`titans_sci.gluonts`.
"""

from titans_sci.gluonts import DEFAULT_MODEL, DEFAULT_TRAINING, TitansEstimator, TitansPredictor

__all__ = ["DEFAULT_MODEL", "DEFAULT_TRAINING", "TitansEstimator", "TitansPredictor"]
