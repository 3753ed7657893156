"""scikit-learn's own estimator checks, on both estimators with the tabular
backbone and otherwise default parameters (as for MLPClassifier)."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from sktransfer import PretrainedClassifier, TransferRegressor

# device="cpu": CPU fits are reproducible, which some checks compare;
# random_state: the same.
DEFAULTS = dict(backbone="mlp", device="cpu", random_state=0)

ESTIMATORS = [PretrainedClassifier(**DEFAULTS), TransferRegressor(**DEFAULTS)]

# Each entry is a bug to close, not a design: check name -> one-line reason.
EXPECTED_FAILED_CHECKS: dict = {}


def expected_failed_checks(estimator):
    return EXPECTED_FAILED_CHECKS.get(type(estimator).__name__, {})


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
