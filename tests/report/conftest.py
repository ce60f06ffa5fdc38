"""The report tests' fixtures live in fixtures.py, shared with tests/test_cli_report.py."""

from tests.report.fixtures import copied_fixture, results_fixture

__all__ = ["copied_fixture", "results_fixture"]
