import math

import pytest


def test_addition():
    assert 2 + 2 == 4


def test_division_by_zero_raises():
    with pytest.raises(ZeroDivisionError):
        1 / 0


@pytest.mark.parametrize("n,expected", [(0, 1), (1, 1), (5, 120), (10, 3628800)])
def test_factorial(n, expected):
    assert math.factorial(n) == expected


def test_isclose():
    assert math.isclose(0.1 + 0.2, 0.3)
