"""The start-up check's descriptions of a database URL: what a message may name of it."""

from __future__ import annotations

import pytest

from calsvc.db.probe import describe, redact


@pytest.mark.parametrize("url,expected", [
    ("postgresql://calsvc:s3cret@db.example:5433/events", ("calsvc@db.example:5433", "events")),
    ("postgres://db.example/events", ("db.example", "events")),
    ("postgresql://postgres@/calsvc?host=/run/pg&port=5432", ("postgres@/run/pg", "calsvc")),
    ("postgresql:///?dbname=x&user=u", ("u@the default socket", "x")),
    ("postgresql://u:p@[::1:5432/x", ("u@[::1:5432", "x")),
])
def test_describe_names_user_host_and_database_never_the_password(url, expected):
    assert describe(url) == expected
    assert "s3cret" not in "".join(describe(url))


def test_redact_keeps_one_line_and_hides_the_password_in_both_spellings():
    url = "postgresql://u:p%40ss-word@db/x"
    assert redact("bad p@ss-word and p%40ss-word\nsecond line", url) == "bad *** and ***"
    assert redact("nothing to hide", "postgresql://db/x") == "nothing to hide"
