"""scikit-learn's own estimator checks, on both estimators with the tabular
backbone and otherwise default parameters (as for MLPClassifier)."""

import pytest
from _pytest.mark import ParameterSet
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn.linear_model import LogisticRegression

from sktransfer import (
    DistilledClassifier,
    PretrainedClassifier,
    TransferLogisticRegression,
    TransferLogisticRegressionCV,
    TransferRegressor,
    TransferRidge,
    TransferRidgeCV,
)

# device="cpu": CPU fits are reproducible, which some checks compare;
# random_state: the same.
DEFAULTS = dict(backbone="mlp", device="cpu", random_state=0)

ESTIMATORS = [PretrainedClassifier(**DEFAULTS), TransferRegressor(**DEFAULTS),
              # an unfitted teacher: each check's fit fits a clone of it first
              DistilledClassifier(LogisticRegression(), PretrainedClassifier(**DEFAULTS))]

# The linear transfer estimators with source=None (plain logistic / ridge
# regression; their sources are tested in test_linear.py), passing every check.
LINEAR_ESTIMATORS = [TransferLogisticRegression(), TransferLogisticRegressionCV(),
                     TransferRidge(), TransferRidgeCV(), TransferRidgeCV(criterion="evidence")]

# check name -> one-line reason. PretrainedClassifier and TransferRegressor
# have none: each would be a bug to close. DistilledClassifier's follows from
# scikit-learn's semi-supervised convention (the check's binary labels are
# -1 and 1), as for its LabelSpreading.
EXPECTED_FAILED_CHECKS: dict = {
    "DistilledClassifier": {
        "check_classifiers_classes": "-1 marks unlabeled samples (scikit-learn's "
                                     "semi-supervised convention), so it cannot be a class",
    },
}


def expected_failed_checks(estimator):
    return EXPECTED_FAILED_CHECKS.get(type(estimator).__name__, {})


# Checks that fit the network many times over (seconds each): marked slow, so
# that `make test-fast` runs only the quick ones. Measured, not a judgement
# on the checks: `make test` runs them all.
SLOW_CHECKS = {
    "check_classifier_data_not_an_array", "check_classifier_multioutput",
    "check_classifiers_classes", "check_classifiers_train", "check_dont_overwrite_parameters",
    "check_dtype_object", "check_estimators_dtypes", "check_estimators_fit_returns_self",
    "check_estimators_pickle", "check_fit2d_1feature", "check_fit_idempotent",
    "check_pipeline_consistency", "check_positive_only_tag_during_fit",
    "check_regressor_data_not_an_array", "check_regressors_int", "check_regressors_train",
    "check_sample_weight_equivalence_on_dense_data", "check_sample_weights_not_overwritten",
    "check_sample_weights_shape", "check_supervised_y_2d",
}


def _check_name(check):
    return getattr(check, "func", check).__name__  # checks come as functools.partial


def _mark_slow_checks(parametrize):
    """``parametrize`` (from parametrize_with_checks) with the checks of
    SLOW_CHECKS marked slow; the ids and other marks are unchanged."""
    argnames, argvalues = parametrize.args
    params = []
    for value in argvalues:
        if not isinstance(value, ParameterSet):
            value = ParameterSet(value, (), None)
        marks = list(value.marks)
        if _check_name(value.values[1]) in SLOW_CHECKS:
            marks.append(pytest.mark.slow)
        params.append(pytest.param(*value.values, marks=marks, id=value.id))
    return pytest.mark.parametrize(argnames, params, **parametrize.kwargs)


@_mark_slow_checks(parametrize_with_checks(ESTIMATORS,
                                           expected_failed_checks=expected_failed_checks))
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@parametrize_with_checks(LINEAR_ESTIMATORS)
def test_linear_estimator_checks(estimator, check):
    check(estimator)
