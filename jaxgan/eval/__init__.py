"""Evaluation of generated images (MNIST's digits first): the paper's Table 1 and the metrics
GAN users trust.

The public surface:

* Metrics (pure functions of arrays, ``jaxgan.eval.metrics``): ``frechet_distance``,
  ``frechet_distance_from_activations``, ``classifier_score``, ``class_histogram``,
  ``rarest_class_share``, ``mean_confidence``, ``parzen_log_likelihood``, ``select_parzen_sigma``,
  ``parzen_window_evaluation``, ``nearest_neighbor_distances``, ``memorization_check``,
  ``precision_recall``, ``coverage`` (any feature space).
* The classifier they look through (``jaxgan.eval.classifier``): ``ClassifierConfig``,
  ``train_classifier``, ``load_or_train_classifier`` (Orbax cache), ``classifier_outputs``,
  ``classifier_accuracy``.
* The suite (``jaxgan.eval.suite``): ``make_eval_data``, ``prepare_reference``,
  ``evaluate_samples`` (one row of every metric), ``reference_rows`` (real digits and noise),
  ``parzen_probes`` (what moves the Parzen estimate: blur, binarization, shifts, fewer centres),
  ``format_table``; for any data and any feature function, ``feature_metrics`` (Frechet
  distance, precision, recall, coverage) and ``classifier_features`` (a trained classifier
  as a feature function).
"""

from jaxgan.eval import classifier, metrics, suite
from jaxgan.eval.classifier import (
    ClassifierConfig,
    TrainedClassifier,
    classifier_accuracy,
    classifier_outputs,
    load_or_train_classifier,
    train_classifier,
)
from jaxgan.eval.metrics import (
    GOODFELLOW_SIGMAS,
    MemorizationResult,
    ParzenResult,
    class_histogram,
    classifier_score,
    coverage,
    frechet_distance,
    frechet_distance_from_activations,
    mean_confidence,
    memorization_check,
    nearest_neighbor_distances,
    parzen_log_likelihood,
    parzen_window_evaluation,
    precision_recall,
    rarest_class_share,
    select_parzen_sigma,
    stacked_modes,
)
from jaxgan.eval.suite import (
    EvalData,
    EvalReference,
    classifier_features,
    conditional_metrics,
    evaluate_samples,
    feature_metrics,
    format_conditional_table,
    format_parzen_probes,
    format_table,
    make_eval_data,
    parzen_probes,
    prepare_reference,
    reference_rows,
    stacked_mnist_modes,
)

__all__ = [
    "classifier",
    "metrics",
    "suite",
    "ClassifierConfig",
    "TrainedClassifier",
    "classifier_accuracy",
    "classifier_outputs",
    "load_or_train_classifier",
    "train_classifier",
    "GOODFELLOW_SIGMAS",
    "MemorizationResult",
    "ParzenResult",
    "class_histogram",
    "classifier_score",
    "coverage",
    "frechet_distance",
    "frechet_distance_from_activations",
    "mean_confidence",
    "memorization_check",
    "nearest_neighbor_distances",
    "parzen_log_likelihood",
    "parzen_window_evaluation",
    "precision_recall",
    "rarest_class_share",
    "select_parzen_sigma",
    "stacked_modes",
    "EvalData",
    "EvalReference",
    "classifier_features",
    "conditional_metrics",
    "evaluate_samples",
    "feature_metrics",
    "format_conditional_table",
    "format_parzen_probes",
    "format_table",
    "make_eval_data",
    "parzen_probes",
    "prepare_reference",
    "reference_rows",
    "stacked_mnist_modes",
]
