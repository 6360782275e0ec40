"""Every case of the fault catalogue (tests/fault_cases.py): the allowed exit status, no leak, no crash."""

from __future__ import annotations

import pytest
from fault_cases import Case, all_cases, judge, problems

CASES = all_cases()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fault_case_exits_as_documented_without_leak_or_crash(case: Case) -> None:
    outcome = judge(case)
    assert problems(case, outcome) == [], outcome.output[-3000:]
