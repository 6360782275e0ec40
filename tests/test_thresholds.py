"""Thresholds: defaults as data, TOML overrides, one-line errors that name the key."""

from __future__ import annotations

import pytest

from diagnose.errors import DoctorError
from diagnose.thresholds import DEFAULTS, Thresholds, load, merge


def test_defaults_are_used_without_a_file():
    assert load(None).of("gpu")["busy_warning_pct"] == DEFAULTS["gpu"]["busy_warning_pct"]


def test_a_toml_file_overrides_only_the_keys_it_names(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text("[cpu-api-server]\nbusy_warning_pct = 70\n\n[gpu]\nbusy_critical_pct = 97.5\n")
    thresholds = load(path)
    assert thresholds.of("cpu-api-server")["busy_warning_pct"] == 70.0
    assert (
        thresholds.of("cpu-api-server")["frontend_ratio_warning"]
        == DEFAULTS["cpu-api-server"]["frontend_ratio_warning"]
    )
    assert thresholds.of("gpu")["busy_critical_pct"] == 97.5


def test_an_unknown_key_is_refused_in_one_line_naming_it(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text("[gpu]\nbusy_warnng_pct = 80\n")
    with pytest.raises(DoctorError) as err:
        load(path)
    line = err.value.one_line()
    assert "gpu.busy_warnng_pct" in line and "busy_warning_pct" in line and "\n" not in line


def test_an_unknown_rule_table_is_refused():
    with pytest.raises(DoctorError, match=r"unknown rule table \[gpuu\]"):
        merge({"gpuu": {"busy_warning_pct": 1}})


def test_a_non_number_is_refused():
    with pytest.raises(DoctorError, match="must be a number"):
        merge({"gpu": {"busy_warning_pct": "high"}})


def test_a_boolean_is_not_taken_for_a_number():
    with pytest.raises(DoctorError, match="must be a number"):
        merge({"gpu": {"busy_warning_pct": True}})


def test_invalid_toml_and_a_missing_file_are_bad_input(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[gpu\n")
    with pytest.raises(DoctorError, match="not valid TOML"):
        load(bad)
    with pytest.raises(DoctorError, match="no thresholds file"):
        load(tmp_path / "absent.toml")


def test_thresholds_are_read_only():
    with pytest.raises(TypeError):
        Thresholds().of("gpu")["busy_warning_pct"] = 1.0  # type: ignore[index]


def test_every_default_is_a_float():
    assert all(isinstance(v, float) for table in DEFAULTS.values() for v in table.values())
