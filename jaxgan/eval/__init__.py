"""Evaluation of generated images (MNIST's digits first): the paper's Table 1 and the metrics
GAN users trust.

The public surface, in the order a run uses it:

* ``make_eval_data``: the test, validation and reference images of a data source.
* ``load_or_train_classifier``: the classifier the metrics look through (trained once, cached
  with Orbax); ``prepare_reference``: its outputs on the test images.
* ``evaluate_samples``: one row of every metric for a set of samples (classifier FID,
  precision, recall, coverage, class shares and confidence, Parzen log-likelihood,
  memorization).
* For any data and any feature function: ``feature_metrics`` (Frechet distance, precision,
  recall, coverage); ``parzen_log_likelihood``, the paper's estimate, on its own.

Everything else here (the submodules ``classifier``, ``metrics`` and ``suite``) is internal.
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
    ParzenGeometry,
    ParzenResult,
    class_histogram,
    classifier_score,
    coverage,
    frechet_distance,
    frechet_distance_from_activations,
    mean_confidence,
    memorization_check,
    nearest_neighbor_distances,
    nearest_other_distances,
    parzen_geometry,
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
    make_eval_data,
    parzen_probes,
    prepare_reference,
    reference_rows,
    stacked_mnist_modes,
)

__all__ = [
    "make_eval_data",
    "load_or_train_classifier",
    "prepare_reference",
    "evaluate_samples",
    "feature_metrics",
    "parzen_log_likelihood",
]
