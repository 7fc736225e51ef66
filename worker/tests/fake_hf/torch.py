"""A stand-in for the few parts of torch the transformers backend touches, so that its generation
loop is tested where torch is not installed (test_transformers_llm.py puts it in sys.modules)."""

import contextlib


class _Dtype:
    def __init__(self, name):
        self._name = name

    def __str__(self):
        return f"torch.{self._name}"


float16, float32, bool = _Dtype("float16"), _Dtype("float32"), _Dtype("bool")


class Tensor:
    """A batch of token id rows."""

    device = "cpu"

    def __init__(self, rows):
        self.rows = [list(row) for row in rows]

    @property
    def shape(self):
        return (len(self.rows), len(self.rows[0]))

    def to(self, device):
        return self

    def __getitem__(self, index):
        row = self.rows[index]
        return _Row(row)


class _Row(list):
    def __getitem__(self, index):
        value = super().__getitem__(index)
        return _Row(value) if isinstance(index, slice) else value

    def tolist(self):
        return list(self)


def full(shape, value, dtype=None, device=None):
    return [value] * shape[0]


@contextlib.contextmanager
def inference_mode():
    yield


class cuda:  # noqa: N801 - mirrors torch.cuda
    class OutOfMemoryError(RuntimeError):
        pass

    available = False
    empty_cache_calls = 0

    @staticmethod
    def is_available():
        return cuda.available

    @staticmethod
    def memory_allocated():
        return 123 * 2**20

    @staticmethod
    def empty_cache():
        cuda.empty_cache_calls += 1
