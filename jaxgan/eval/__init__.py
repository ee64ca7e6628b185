"""Evaluation of generated images (MNIST's digits first): the paper's Table 1 and the metrics
GAN users trust.

The public surface, in the order a run uses it:

* ``load_or_train_classifier``: the classifier the metrics look through (trained once, cached
  with Orbax).
* ``prepare_reference``: the test, validation and reference images of the data, and the
  classifier's outputs on them.
* ``evaluate_samples``: one row of every metric for a set of samples (classifier FID,
  precision, recall, coverage, class shares and confidence, Parzen log-likelihood,
  memorization).
* For any data: ``feature_metrics`` (Frechet distance, precision, recall and coverage of any
  features); ``parzen_log_likelihood``, the paper's estimate, on its own.

Everything else (the submodules ``classifier``, ``metrics`` and ``suite``) is internal.
"""

from jaxgan.eval.classifier import load_or_train_classifier
from jaxgan.eval.metrics import parzen_log_likelihood
from jaxgan.eval.suite import evaluate_samples, feature_metrics, prepare_reference

__all__ = [
    "load_or_train_classifier",
    "prepare_reference",
    "evaluate_samples",
    "feature_metrics",
    "parzen_log_likelihood",
]
