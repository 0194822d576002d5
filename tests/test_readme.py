"""The README says what the code does: every row of "When things go wrong" names the tests that show
it, and the layout table lists every module of the product."""

from __future__ import annotations

import ast
from typing import Dict, List, Tuple

from tests.helpers import ROOT

README = (ROOT / "README.md").read_text()

# The first words of each failure row -> the tests that show that behaviour.
FAILURE_ROW_TESTS: Dict[str, Tuple[str, ...]] = {
    "A transient 429/500/502/503/504": (
        "test_faults.py::test_each_of_the_seeds_retried_statuses_is_retried_once_then_loads",
        "test_faults.py::test_storm_of_transient_errors_completes_with_exact_counts",
    ),
    "One resource keeps failing": (
        "test_faults.py::test_failure_on_a_first_run_leaves_its_tables_absent_and_loads_the_other_nine",
        "test_faults.py::test_next_run_after_a_failed_one_loads_everything",
    ),
    "The key is rejected": (
        "test_faults.py::test_rejected_key_is_not_retried",
        "test_function.py::test_key_is_read_again_after_a_403_even_within_the_cache_time",
    ),
    "The API hangs": ("test_faults.py::test_hanging_api_is_retried_then_fails_naming_the_resource",),
    "A 200 that is not JSON": (
        "test_faults.py::test_200_answer_in_the_wrong_shape_fails_naming_resource_and_selector",
    ),
    "Records without the primary key": (
        "test_faults.py::test_records_without_primary_key_fail_naming_key_and_override",
        "test_hostile_input.py::test_a_key_that_is_an_object_fails_that_resource_only",
    ),
    "A field appears": ("test_faults.py::test_schema_drift_new_field_and_type_change_load_without_failure",),
    "A key arrives as a number": (
        "test_hostile_input.py::test_keys_that_are_numbers_then_strings_load_into_one_text_column",
        "test_hostile_input.py::test_a_warehouse_holding_numeric_keys_takes_string_keys",
    ),
    "The warehouse refuses one resource's rows": (
        "test_hostile_input.py::test_a_load_the_warehouse_refuses_fails_that_resource_only",
        "test_hostile_input.py::test_a_resource_dlt_cannot_normalize_fails_alone_and_the_others_load",
    ),
    "The cursor chain loops": (
        "test_hostile_input.py::test_a_cursor_seen_before_fails_the_resource_at_once_naming_the_page",
        "test_hostile_input.py::test_an_endless_chain_stops_at_the_page_cap",
    ),
    "The run reaches `RUN_DEADLINE_SECONDS`": (
        "test_hostile_input.py::test_at_the_run_deadline_resources_still_reading_fail_and_the_rest_loads",
    ),
    "The process reading the sessions chain dies": (
        "test_reader_process.py::test_a_reading_process_killed_mid_chain_fails_sessions_only_and_the_next_run_loads",
        "test_reader_process.py::test_a_reading_process_that_dies_fails_the_resource_naming_it",
    ),
    "An answer drips in slowly": (
        "test_hostile_input.py::test_an_answer_that_drips_is_bounded_by_the_request_timeout_as_a_whole",
    ),
    "`SOURCES__ANALYTICS__BASE_URL` is `http://`": (
        "test_hostile_input.py::test_base_urls_that_would_expose_the_key_are_refused_before_any_request",
        "test_hostile_input.py::test_a_path_override_to_another_host_is_refused",
    ),
    "Records carry fields named like credentials": (
        "test_hostile_input.py::test_fields_named_like_credentials_are_dropped_and_named_in_the_log",
        "test_hostile_input.py::test_keep_fields_loads_a_named_credential_field_on_purpose",
    ),
    "Records that are not objects": ("test_hostile_input.py::test_odd_answers_get_a_message_that_says_what_was_found",),
    "Two triggers at once on one instance": (
        "test_faults.py::test_second_trigger_while_running_gets_409",
        "test_function.py::test_run_held_by_another_process_on_the_instance_gets_409",
    ),
    "A run already in progress on another instance": (
        "test_run_lock.py::test_two_instances_at_once_one_loads_one_gets_409",
        "test_run_lock.py::test_stale_lock_is_taken_over_with_a_warning_naming_its_run",
    ),
    "The run lock's bucket is missing": (
        "test_run_lock.py::test_missing_bucket_is_an_error_naming_run_lock_bucket",
        "test_run_lock.py::test_unreachable_storage_is_500_naming_run_lock_bucket",
    ),
    "The request body is over 64 KiB": (
        "test_hostile_request.py::test_body_over_the_cap_is_413_naming_the_limit",
        "test_hostile_request.py::test_deeply_nested_body_is_400_naming_the_nesting",
        "test_hostile_request.py::test_ten_thousand_unknown_names_get_a_short_400",
    ),
    "Scheduler retries a run that timed out": (
        "test_faults.py::test_second_trigger_while_running_gets_409",
        "test_faults.py::test_three_runs_leave_identical_tables",
    ),
    "A setting is missing or wrong": (
        "test_function.py::test_missing_setting_is_500_naming_it",
        "test_hostile_input.py::test_a_wrong_setting_is_500_naming_it_before_any_request",
    ),
    "Secret Manager: no version": ("test_function.py::test_secret_manager_failures_are_500_naming_the_secret",),
    "The local DuckDB file is held by another process": (
        "test_function.py::test_a_duckdb_file_held_by_another_process_is_named_in_the_answer",
    ),
    "The warehouse fails": (
        "test_faults.py::test_run_after_an_interrupted_one_drops_its_stale_package",
        "test_bigquery.py::test_warehouse_refusing_mid_run_is_a_500_naming_the_step_and_the_next_run_completes",
    ),
}


def _rows(marker: str) -> List[str]:
    table = README.split(f"<!-- {marker}:start -->\n", 1)[1].split(f"<!-- {marker}:end -->", 1)[0]
    return [line.split("|")[1].strip() for line in table.splitlines()[2:] if line.startswith("|")]


def _tests_in(module: str) -> set:
    tree = ast.parse((ROOT / "tests" / module).read_text())
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def test_every_failure_row_names_tests_that_exist() -> None:
    rows = _rows("failures")
    unmapped = [row for row in rows if not any(row.startswith(prefix) for prefix in FAILURE_ROW_TESTS)]
    assert not unmapped, f"rows of 'When things go wrong' with no test named here: {unmapped}"
    stale = [prefix for prefix in FAILURE_ROW_TESTS if not any(row.startswith(prefix) for row in rows)]
    assert not stale, f"tests named for rows the README no longer has: {stale}"
    for tests in FAILURE_ROW_TESTS.values():
        for test in tests:
            module, name = test.split("::")
            assert name in _tests_in(module), f"{test} does not exist"


def test_layout_table_names_every_module_of_the_product() -> None:
    layout = README.split("## Layout", 1)[1].split("\n## ", 1)[0]
    for folder in ("source", "loader", "simulator"):
        for path in sorted((ROOT / folder).glob("*.py")):
            if path.name not in ("__init__.py", "__main__.py"):
                assert f"`{path.name}`" in layout or f"`{folder}/{path.name}`" in layout, (
                    f"{folder}/{path.name} is not in the layout table"
                )
