from collections import Counter, deque


def test_counter_most_common():
    assert Counter("abracadabra").most_common(1) == [("a", 5)]


def test_deque_rotation():
    d = deque([1, 2, 3])
    d.rotate(1)
    assert list(d) == [3, 1, 2]


def test_sorted_is_stable():
    pairs = [(1, "b"), (0, "a"), (1, "a")]
    assert sorted(pairs, key=lambda p: p[0]) == [(0, "a"), (1, "b"), (1, "a")]
