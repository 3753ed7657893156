"""Tests of errors raised in DataLoader workers and re-raised in the main
process (sktransfer._nn.inference.unwrap_worker_error)."""

import pytest
import torch
from torch._utils import ExceptionWrapper
from torch.utils.data import Dataset

from sktransfer import WeightsNotFoundError
from sktransfer._nn.inference import Batching, run_batches, unwrap_worker_error


def as_raised_by_a_worker(exc: BaseException) -> BaseException:
    """``exc`` as torch re-raises it from DataLoader worker process 1."""
    try:
        try:
            raise exc
        except BaseException:
            wrapper = ExceptionWrapper(where="in DataLoader worker process 1")
        wrapper.reraise()
    except BaseException as reraised:
        return reraised
    raise AssertionError("reraise() did not raise")


class UnreadableAt(Dataset):
    """Items ``(tensor, 0)``; item ``bad`` raises ``error``."""

    def __init__(self, n, bad, error):
        self.n, self.bad, self.error = n, bad, error

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        if index == self.bad:
            raise self.error
        return torch.full((2,), float(index)), 0


@pytest.mark.parametrize("error", [
    ValueError("cannot read image file '/data/x.png': cannot identify image file"),
    TypeError("two\nlines"),
    ValueError(""),
    WeightsNotFoundError("weights file 'w.pth' does not exist."),
    KeyError("key"),
], ids=["one-line", "two-lines", "empty", "qualified-type", "key-error"])
def test_unwrap_gives_the_original_type_and_message(error):
    wrapped = as_raised_by_a_worker(error)
    assert "DataLoader worker process 1" in str(wrapped)
    unwrapped = unwrap_worker_error(wrapped)
    assert type(unwrapped) is type(error)
    if isinstance(error, KeyError):
        assert unwrapped.args == ("'key'",)  # the key's repr, as the worker printed it
    else:
        assert str(unwrapped) == str(error)


def test_unwrap_gives_the_last_error_of_a_chain():
    try:
        try:
            raise OSError("first")
        except OSError as cause:
            raise ValueError("cannot read image file 'a.png': first") from cause
    except ValueError as chained:
        unwrapped = unwrap_worker_error(as_raised_by_a_worker(chained))
    assert type(unwrapped) is ValueError
    assert str(unwrapped) == "cannot read image file 'a.png': first"


class NeedsTwoArguments(Exception):
    def __init__(self, a, b):
        super().__init__(f"{a} and {b}")


def test_unwrap_of_an_error_torch_could_not_rebuild():
    wrapped = as_raised_by_a_worker(NeedsTwoArguments("x", "y"))
    assert type(wrapped) is RuntimeError  # torch's own fallback
    unwrapped = unwrap_worker_error(wrapped)
    assert type(unwrapped) is RuntimeError
    assert str(unwrapped) == "NeedsTwoArguments: x and y"


def test_other_errors_are_returned_unchanged():
    error = ValueError("Caught nothing: not a worker's error")
    assert unwrap_worker_error(error) is error


def test_run_batches_raises_the_workers_error_itself():
    dataset = UnreadableAt(6, bad=4, error=ValueError("cannot read image file 'b.png': bad"))
    batching = Batching(batch_size=2, device="cpu", num_workers=2)
    with pytest.raises(ValueError) as excinfo:
        run_batches(lambda X: X, dataset, batching)
    assert str(excinfo.value) == "cannot read image file 'b.png': bad"
    ok = UnreadableAt(6, bad=-1, error=None)
    assert run_batches(lambda X: X, ok, batching).shape == (6, 2)


def test_errors_of_the_network_pass_unchanged():
    error = RuntimeError("shapes do not match")

    def fails(X):
        raise error

    with pytest.raises(RuntimeError) as excinfo:
        run_batches(fails, UnreadableAt(2, bad=-1, error=None), Batching(2, "cpu"))
    assert excinfo.value is error
