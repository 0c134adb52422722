"""The GluonTS integration: an ``Estimator``/``Predictor`` pair for the :class:`TitansForecaster`.

Only GluonTS' core API is used (no ``gluonts.torch``, so no Lightning): :class:`TitansEstimator`
is a :class:`gluonts.model.estimator.Estimator` whose :meth:`~TitansEstimator.train` trains with
the project's one :class:`~titans_sci.train.Trainer` (select on validation data, early
stopping, a checkpoint after every epoch, exact resume, data-parallel under ``torchrun``), and
:class:`TitansPredictor` is a :class:`gluonts.model.predictor.Predictor` that yields
:class:`~gluonts.model.forecast.SampleForecast` (Student-t and point heads) or
:class:`~gluonts.model.forecast.QuantileForecast` (quantile head) objects, so GluonTS'
backtesting and :class:`~gluonts.evaluation.Evaluator` work unchanged.

The settings are the project's configs: the model a
:class:`~titans_sci.models.forecaster.ForecasterConfig` (the estimator sets its ``lookback``,
``horizon`` and ``channels``), the training a :class:`~titans_sci.train.TrainConfig`; the
estimator's own arguments are what is GluonTS' (``prediction_length``, ``freq``, ...).

The model is univariate: every dataset entry's ``target`` is one 1-D series (``channels=1``).

Conventions, for training and prediction alike:

- **Missing values** (NaN or inf in the target), as GluonTS' ``observed_values``: a missing
  *target* step is never trained on, it is masked out of the loss (the loss is the mean over
  the observed target steps of a batch; see :meth:`TitansForecaster.loss`). A missing *input*
  (context) step is imputed for the network's input only: filled with the last observed value
  before it (forward fill); the window's instance normalisation then sees the filled values
  (:meth:`TitansForecaster.forward` takes no input mask, so its statistics are those of the
  filled window: a value repeated over a gap weighs as often as it is repeated).
  A training or validation series starts at its first observed value (leading missing steps
  are dropped); at prediction, leading missing steps are filled with the first observed value.
  A series with no finite value (empty or all-NaN) raises a ``ValueError`` naming its
  ``item_id`` (or its position in the dataset).
- **Short series.** A window (``context_length`` input steps, plus ``prediction_length`` target
  steps when training) that reaches before the series' first observation is **left-padded with
  the series' first value** (input steps only: a target step is never padding). A training or
  validation series needs at least ``prediction_length + 1`` values from its first observed
  value on (a full target and one step of context); a shorter one raises a ``ValueError``
  naming the item. Prediction needs one observation.
- **Covariates**, by GluonTS' field names and semantics (``TitansEstimator``'s
  ``num_feat_dynamic_real``, ``num_past_feat_dynamic_real``, ``cardinality``,
  ``num_feat_static_real`` and ``time_features``): ``feat_dynamic_real`` ``[k, T]`` is known
  over the horizon too, so at prediction an entry's covers its target and the
  ``prediction_length`` steps after it; ``past_feat_dynamic_real`` ``[k, T]`` covers the target
  only and is never read after it; ``feat_static_cat`` (integers below each cardinality) and
  ``feat_static_real`` are per series; ``time_features`` are computed from each step's period.
  A missing dynamic value is filled as a missing input step of the target is; an entry that
  lacks a field the model reads, or whose ``feat_dynamic_real`` stops short of the horizon, is
  refused in one line naming it. No scaling is needed: the model normalises each window of the
  target and of each dynamic feature.
- **Time index.** Each entry's ``start`` (a ``pandas.Period``, or anything ``pandas.Period``
  accepts together with the entry's ``freq`` field or the estimator's ``freq``) must have the
  estimator's frequency; otherwise a ``ValueError`` names the item. A forecast starts at the
  period right after the last observation: ``start + len(target)``.

Example (``y``: a 1-D array of hourly values; its last 48 are held out for scoring)::

    from dataclasses import replace
    from pathlib import Path

    from gluonts.dataset.common import ListDataset
    from gluonts.evaluation import Evaluator, make_evaluation_predictions
    from gluonts.model.predictor import Predictor

    from titans_sci.gluonts import DEFAULT_MODEL, DEFAULT_TRAINING, TitansEstimator

    train = ListDataset([{"item_id": "a", "start": "2020-01-01", "target": y[:-48]}], freq="h")
    test = ListDataset([{"item_id": "a", "start": "2020-01-01", "target": y}], freq="h")
    estimator = TitansEstimator(
        prediction_length=48,
        freq="h",
        model=replace(DEFAULT_MODEL, dropout=0.1),  # Student-t head, the default backbone
        training=replace(DEFAULT_TRAINING, epochs=5),  # keeps the clipping at norm 1
        directory="runs/titans_a",  # checkpoints; resume=True continues an interrupted run
    )
    predictor = estimator.train(train)  # validation_data=... keeps the best epoch
    forecasts, series = make_evaluation_predictions(test, predictor, num_samples=100)
    metrics, per_item = Evaluator(quantiles=(0.1, 0.5, 0.9))(series, forecasts)
    print(metrics["MASE"], metrics["sMAPE"], metrics["mean_wQuantileLoss"])

    predictor.serialize(Path("model_dir"))  # an existing, empty folder
    predictor = Predictor.deserialize(Path("model_dir"))  # a TitansPredictor again

The package has one module per job: :mod:`.entries` reads and checks dataset entries (the
series' values and observed masks, filled with :func:`titans_sci.data.timeseries.forward_fill`
as the CSV reader's ``nan_policy="ffill"`` is), :mod:`.estimator` trains, :mod:`.predictor`
forecasts and serializes the forecaster as a model folder (:mod:`titans_sci.modelfolder`);
:mod:`.history` is the whole-history pair (:class:`TitansHistoryEstimator`: the memory streams
each whole series and keeps writing at prediction).
"""

from .estimator import DEFAULT_MODEL, DEFAULT_TRAINING, TitansEstimator
from .history import TitansHistoryEstimator, TitansHistoryPredictor
from .predictor import TitansPredictor

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_TRAINING",
    "TitansEstimator",
    "TitansHistoryEstimator",
    "TitansHistoryPredictor",
    "TitansPredictor",
]
