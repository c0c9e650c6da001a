import re

import pytest

from report import format as fmt


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.123456, "0.123"),
        (12345, "12,345"),
        (3.0, "3"),
        (-0.5, "−0.5"),
        (1e-5, "1×10⁻⁵"),
        (98.1234, "98.1"),
        (1234567.0, "1.2×10⁶"),
        (0.9, "0.9"),
        (14.99, "15.0"),  # three digits: the zero is rounding's, not the value's
        (float("nan"), "—"),
        (None, "—"),
        (True, "yes"),
    ],
)
def test_num(value, expected):
    assert fmt.num(value) == expected


def test_pct_sci_pm_dur_int():
    assert fmt.pct(0.98123) == "98.12%"
    assert fmt.pct(0.5, err=0.013) == "50.0%"
    assert fmt.num(1310.2) == "1,310" and fmt.num(10203.1) == "10,200"  # one separator rule
    assert fmt.pct(0.99998) == "99.998%" and fmt.pct(1.0) == "100.00%"  # never rounded up to a perfect score
    assert fmt.sci(0.001) == "1×10⁻³"
    assert fmt.sci(0.0025) == "2.5×10⁻³"
    assert fmt.sci(9.99e-4) == "1.0×10⁻³"  # rounds up a decade, keeping its digit
    assert fmt.sci(-3e5) == "−3×10⁵"
    assert fmt.pm((0.9812, 0.0005)) == "98.12 ± 0.05%"
    assert fmt.pm((0.9812, 0.012)) == "98.1 ± 1.2%"
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


@pytest.mark.parametrize(
    ("filter_", "value", "shown"),
    [  # the referee's examples of false precision, and what the one rule makes of them
        ("roundoff", -8.288e-18, "−8×10⁻¹⁸"),
        ("share", 0.2, "20%"),
        ("share", 0.99951, "100%"),
        ("share", 0.123, "12.3%"),
        ("timed", 544.3, "540"),
        ("timed", 2.663, "2.7"),
        ("timed", 8.059, "8.1"),
        ("timed", 1234.5, "1,200"),
        ("si", 62006, "62.0 k"),
        ("si", 14_990_000, "15.0 M"),
        ("si", 999_960, "1.00 M"),
        ("pval", 0.0004, "< 0.001"),
        ("pval", 0.01234, "0.012"),
        ("pval", 1.0, "1"),
        ("pval", 0.00198, "0.0020"),  # two digits, as beside "0.0031" in the same report
        ("pval", 0.5, "0.50"),
        ("num", 0.70998, "0.710"),  # beside 0.683 in one list: three digits each
        ("num", -0.99972, "−1.00"),  # not the "−1" of an exact −1 beside it
        ("num", -1.0, "−1"),
        ("num", 0.9, "0.9"),  # a setting: its zeros would be false precision
        ("num", 9.03e-6, "9.0×10⁻⁶"),
        ("sci", 1.0000000000000002, "1×10⁰"),  # 0.1 * 10: float noise is no digit
    ],
)
def test_digits_follow_what_is_known_of_the_uncertainty(filter_, value, shown):
    assert fmt.apply(filter_, value) == shown


def test_a_value_with_an_error_is_shown_to_the_error_s_precision():
    assert fmt.num(0.123456, err=0.013) == "0.123"  # an error with leading digit 1 keeps two digits
    assert fmt.num(0.123456, err=0.05) == "0.12"
    assert fmt.num(123.456, err=4) == "123"
    assert fmt.pct(0.95312, err=0.0013) == "95.31%"
    assert fmt.pct(0.95312, err=0.004) == "95.3%"


def test_no_negative_zero_and_errors_of_ten_or_more_round_to_tens():
    assert fmt.num(-0.0001, err=0.05) == "0.00"
    assert fmt.pct(-0.00001) == "0.00%"
    assert fmt.pm((-0.00001, 0.0005)) == "0.00 ± 0.05%"
    assert fmt.pp(-0.00001) == "0.00"
    assert fmt.num(12345.678, err=970) == "12,300"
    assert fmt.num(-0.5, err=0.05) == "−0.50"


def test_an_upper_bound_is_rounded_up_so_at_most_stays_true():
    assert fmt.sci(1.332e-15, up=True) == "1.4×10⁻¹⁵" and fmt.sci(1.332e-15) == "1.3×10⁻¹⁵"
    assert fmt.roundoff(3.24e-14, up=True) == "4×10⁻¹⁴" and fmt.roundoff(3.24e-14) == "3×10⁻¹⁴"
    assert fmt.sci(9.96e-5, up=True) == "1.0×10⁻⁴" and fmt.sci(1.96e-15, up=True) == "2.0×10⁻¹⁵"  # zeros kept
    assert fmt.sci(1e-15, up=True) == "1×10⁻¹⁵" and fmt.sci(2.5e-3, up=True) == "2.5×10⁻³"  # on the grid
    assert fmt.pct(0.882801, up=True) == "88.29%" and fmt.pct(0.8828, up=True) == "88.28%"
    assert fmt.pct(0.99994, up=True) == "99.994%"  # never a 100.00% the store does not hold
    assert fmt.pp(0.012301, up=True) == "1.24" and fmt.pp(0.0123, up=True) == "1.23"


def test_a_p_value_is_never_printed_across_a_conventional_level():
    assert fmt.pval(0.0499) == "0.0499" and fmt.pval(0.04999) == "0.04999"  # not "0.050" beside "significant"
    assert fmt.pval(0.00996) == "0.00996" and fmt.pval(0.0501) == "0.050"
    assert fmt.pval(0.012) == "0.012" and fmt.pval(0.0020) == "0.0020"


def test_an_uncertainty_of_exactly_three_gets_one_digit_as_any_other_from_three_up():
    assert fmt.pm((0.9123, 0.003)) == "91.2 ± 0.3%" and fmt.pm((0.9123, 0.004)) == "91.2 ± 0.4%"
    assert fmt.pm((0.9123, 0.0029)) == "91.23 ± 0.29%"


def test_every_at_most_in_the_templates_rounds_its_bound_up():
    """An upper bound printed the ordinary way can read below the value it bounds ("at most 1.3" for
    1.332): the templates' "at most" values go through a filter with ``up=True`` (or are exact counts)."""
    from report.output import TEMPLATES

    bounds = [
        (path.name, m.group(0))
        for path in sorted(TEMPLATES.glob("*.j2"))
        for m in re.finditer(r"at most[^{.]{0,20}\{\{[^}]*\}\}", path.read_text(encoding="utf-8"))
    ]
    assert bounds, "the templates state bounds; this test must see them"
    rounded = [(f, b) for f, b in bounds if re.search(r"\|\s*(sci|roundoff|pct|pp|num)\b(?!\(up=True\))", b)]
    assert rounded == [], rounded
