"""Label parsing: booleans, 0/1 and the strings true/false; anything else names the row."""
import numpy as np
import pytest

from kto.data.schema import parse_label
from kto.errors import DataError


@pytest.mark.parametrize("value,expected", [
    (True, True), (False, False), (1, True), (0, False), (1.0, True), (0.0, False),
    ("true", True), ("False", False), (" TRUE ", True), ("1", True), ("0", False),
    (np.bool_(True), True), (np.int64(0), False), (np.int64(1), True),
])
def test_accepted_labels(value, expected):
    assert parse_label(value, "f.jsonl:3") is expected


@pytest.mark.parametrize("value", [2, -1, 0.5, "yes", "good", "", None, [1], {"x": 1}, np.int64(3)])
def test_other_labels_are_errors_naming_the_row(value):
    with pytest.raises(DataError) as e:
        parse_label(value, "f.jsonl:3")
    assert str(e.value).startswith("f.jsonl:3: label")
