import pytest


class TestCase:
    def test_upper(self):
        assert "testexec".upper() == "TESTEXEC"

    def test_title(self):
        # A real failure, kept on purpose: the demo shows how failures are reported.
        assert "hello world".title() == "Hello world"


def test_split():
    assert "a,b,c".split(",") == ["a", "b", "c"]


@pytest.mark.skip(reason="shows how skipped tests are reported")
def test_skipped():
    assert False
