import pytest

from report import format as fmt


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.123456, "0.1235"),
        (12345, "12,345"),
        (3.0, "3"),
        (-0.5, "−0.5"),
        (1e-5, "1×10⁻⁵"),
        (98.1234, "98.12"),
        (1234567.0, "1.235×10⁶"),
        (float("nan"), "—"),
        (None, "—"),
        (True, "yes"),
    ],
)
def test_num(value, expected):
    assert fmt.num(value) == expected


def test_pct_sci_pm_dur_int():
    assert fmt.pct(0.98123) == "98.12%"
    assert fmt.pct(0.5, 1) == "50.0%"
    assert fmt.sci(0.001) == "1×10⁻³"
    assert fmt.sci(0.0025) == "2.5×10⁻³"
    assert fmt.sci(9.99e-4) == "1×10⁻³"
    assert fmt.sci(-3e5) == "−3×10⁵"
    assert fmt.pm((0.9812, 0.0005)) == "98.12 ± 0.05%"
    assert fmt.dur(0.2) == "200 ms"
    assert fmt.dur(3.24) == "3.2 s"
    assert fmt.dur(245) == "4 min 05 s"
    assert fmt.dur(7200) == "2 h 00 min"
    assert fmt.integer(11173962) == "11,173,962"


def test_apply_rejects_unknown_format():
    with pytest.raises(ValueError, match="unknown number format 'money'"):
        fmt.apply("money", 1)


def test_join_and_lists_one_two_or_more_items():
    from report.format import join_and

    assert join_and(["A"]) == "A"
    assert join_and(["A", "B"]) == "A and B"
    assert join_and(["A", "B", "C"]) == "A, B and C"
