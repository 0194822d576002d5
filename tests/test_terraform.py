"""Offline checks of the Terraform deployment in terraform/.

`terraform validate`/`plan` need the providers, which cannot be downloaded on the build machines,
so the deployment is checked without them: `terraform fmt`, the structure of the configuration
(parsed with python-hcl2), the function's source zip evaluated against the real tree, the inputs'
validations and derived values planned by Terraform on a provider-free copy (variables.tf and
main.tf), the alerts' log filters evaluated on the function's own log lines, and checkov's static
policies. tests/test_tf_schema.py checks the configuration against the providers' schemas.
"""

from __future__ import annotations

import ast
import glob
import json
import logging
import operator
import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple

import hcl2
import pytest

from loader.environment import REQUIRED_DEPLOYED, SETTINGS, SETTINGS_BY_NAME
from loader.logs import LOGGER_NAME, JsonLineHandler
from tests.helpers import ROOT

TF_DIR = ROOT / "terraform"
README = ROOT / "README.md"
HCL_OPTIONS = hcl2.SerializationOptions(strip_string_quotes=True, explicit_blocks=False, with_comments=False)
FUNCTION = "google_cloudfunctions2_function.default"
FUNCTION_URI = "${google_cloudfunctions2_function.default.service_config[0].uri}"
FUNCTION_SERVICE = "${google_cloudfunctions2_function.default.service_config[0].service}"
SA_MEMBER = "serviceAccount:${{google_service_account.{}.email}}"
BASIC_ROLES = re.compile(r"\broles/(owner|editor|viewer)\b")
PUBLIC_MEMBERS = re.compile(r"\ball(Authenticated)?Users\b")
# Never in the function's zip: path parts and file names.
FORBIDDEN_PARTS = {"tests", "test", "__pycache__", ".venv", "venv", ".venv-tools", "site-packages", ".pytest_cache"}
FORBIDDEN_NAME = re.compile(r"(^secrets\.toml$|\.pyc$|^test_.*\.py$|_test\.py$|^conftest\.py$)")
CHECKOV_TIMEOUT_SECONDS = 300
TERRAFORM = shutil.which("terraform")
# No version check against HashiCorp's servers (no network here; it would stall each call).
TERRAFORM_ENV = {**os.environ, "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1"}
needs_terraform = pytest.mark.skipif(TERRAFORM is None, reason="terraform CLI not on PATH")
# What the alerts' log filters stand in for, when evaluated here.
FUNCTION_NAME = "analytics-loader"
REGION = "europe-west1"
FILTER_OPERATORS = {"=": operator.eq, ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}
SEVERITIES = ["DEFAULT", "DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL", "ALERT", "EMERGENCY"]


# --- helpers ----------------------------------------------------------------------------------


def parse_hcl(path: Path) -> Dict[str, Any]:
    """Parse one HCL file into plain dicts (blocks are lists of dicts, expressions are "${...}")."""
    with path.open() as f:
        return hcl2.load(f, serialization_options=HCL_OPTIONS)


@cache
def config() -> Dict[str, Dict[str, Any]]:
    """All terraform/*.tf merged: {"resource": {type: {name: body}}, "data": ..., "variable": {name: body}, ...}."""
    merged: Dict[str, Dict[str, Any]] = {
        "resource": {},
        "data": {},
        "variable": {},
        "output": {},
        "locals": {},
        "terraform": {},
    }
    for path in sorted(TF_DIR.glob("*.tf")):
        for kind, entries in parse_hcl(path).items():
            for entry in entries:
                if kind in ("resource", "data"):
                    for rtype, named in entry.items():
                        for name, body in named.items():
                            assert name not in merged[kind].setdefault(rtype, {}), (
                                f"{kind} {rtype}.{name} declared twice"
                            )
                            merged[kind][rtype][name] = body
                elif kind in ("variable", "output", "locals"):
                    for name, body in entry.items():
                        assert name not in merged[kind], f"{kind} {name} declared twice"
                        merged[kind][name] = body
                elif kind == "terraform":
                    merged[kind].update(entry)
    return merged


def resource(address: str) -> Dict[str, Any]:
    """The body of one resource, by address `type.name`."""
    rtype, name = address.split(".", 1)
    found = config()["resource"].get(rtype, {}).get(name)
    assert found is not None, f"resource {address} not found in terraform/*.tf"
    return found


def block(body: Dict[str, Any], *path: str) -> Dict[str, Any]:
    """A nested single block, e.g. block(function, "service_config")."""
    for name in path:
        value = body.get(name)
        assert isinstance(value, list) and len(value) == 1, f"expected exactly one `{name}` block, got {value!r}"
        body = value[0]
    return body


def strings(node: Any) -> Iterator[str]:
    """Every string (keys and values) in a parsed structure."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)
    elif isinstance(node, str):
        yield node


def iam_grants() -> List[Tuple[str, Dict[str, Any]]]:
    """(address, body) of every IAM resource (`*_iam_member`, `*_iam_binding`, `*_iam_policy`)."""
    return [
        (f"{rtype}.{name}", body)
        for rtype, named in config()["resource"].items()
        if re.search(r"_iam_(member|binding|policy)$", rtype)
        for name, body in named.items()
    ]


def grants_of(role: str) -> List[Tuple[str, Dict[str, Any]]]:
    return [(address, body) for address, body in iam_grants() if body.get("role") == role]


def env_vars() -> Dict[str, Any]:
    return block(resource(FUNCTION), "service_config")["environment_variables"]


def archive_patterns() -> List[str]:
    """The fileset() patterns that select the function's source files (local.source_files)."""
    expression = config()["locals"]["source_files"]
    patterns = re.findall(r'fileset\(\s*local\.source_root\s*,\s*"([^"]+)"\s*\)', expression)
    assert patterns, f"no fileset(local.source_root, ...) pattern in local.source_files: {expression}"
    return patterns


def fileset_regex(pattern: str) -> re.Pattern[str]:
    """Terraform's fileset() glob as a regex: `**/` is any number of folders, `*` and `?` stay in one."""
    out = ""
    for token in re.split(r"(\*\*/|\*\*|\*|\?)", pattern):
        out += {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(token, re.escape(token))
    return re.compile(out)


@cache
def archive_files() -> Tuple[str, ...]:
    """The zip's file list: the fileset patterns evaluated on the real tree (fileset matches hidden files too)."""
    found: Set[str] = set()
    for pattern in archive_patterns():
        for match in glob.glob(pattern, root_dir=ROOT, recursive=True, include_hidden=True):
            if (ROOT / match).is_file():
                found.add(Path(match).as_posix())
    return tuple(sorted(found))


def local_imports(files: List[Path]) -> Set[str]:
    """Top-level names imported by `files` that are modules or packages of this repository."""
    names: Set[str] = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if (ROOT / f"{top}.py").is_file() or (ROOT / top).is_dir():
                    names.add(top)
    return names


def http_entry_points(main: Path) -> List[str]:
    """Names of the functions in main.py decorated with functions_framework.http."""

    def is_http(decorator: ast.expr) -> bool:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        return (
            isinstance(target, ast.Attribute)
            and target.attr == "http"
            and isinstance(target.value, ast.Name)
            and target.value.id == "functions_framework"
        )

    tree = ast.parse(main.read_text(), filename=str(main))
    return [
        node.name for node in tree.body if isinstance(node, ast.FunctionDef) and any(map(is_http, node.decorator_list))
    ]


def checkov_bin() -> Optional[str]:
    """CHECKOV_BIN, else the tools venv `make test` builds, else checkov on PATH."""
    if os.environ.get("CHECKOV_BIN"):
        return os.environ["CHECKOV_BIN"]
    tools = ROOT / ".venv-tools" / "bin" / "checkov"
    if tools.is_file():
        return str(tools)
    return shutil.which("checkov")


def hcl_join(expression: str) -> str:
    """Evaluate `${join("<sep>", ["a", "b", ...])}` as written in the configuration (string literals only)."""
    match = re.fullmatch(r"\$\{join\((.*)\)\}", expression, re.S)
    assert match, f"expected a join() of string literals: {expression}"
    separator, *items = [json.loads(f'"{m}"') for m in re.findall(r'"((?:[^"\\]|\\.)*)"', match.group(1))]
    return separator.join(items)


def resolve_filter(text: str) -> str:
    """A log filter as deployed for FUNCTION_NAME in REGION: references replaced by their values."""
    values = {
        "${local.run_answered_filter}": hcl_join(config()["locals"]["run_answered_filter"]),
        "${google_cloudfunctions2_function.default.name}": FUNCTION_NAME,
        "${google_cloud_scheduler_job.default.name}": FUNCTION_NAME,
        "${google_cloud_scheduler_job.default.region}": REGION,
    }
    if text.startswith("${join("):
        text = hcl_join(text)
    for reference, value in values.items():
        text = text.replace(reference, value)
    assert "${" not in text, f"unresolved reference in the filter: {text}"
    return text


def log_field(entry: Dict[str, Any], path: str) -> Any:
    for key in path.split("."):
        if not isinstance(entry, dict) or key not in entry:
            return None
        entry = entry[key]
    return entry


def filter_matches(text: str, entry: Dict[str, Any]) -> bool:
    """Cloud Logging's query language, the subset the alerts use: terms joined by AND, each
    `field="text"`, `field=~"regex"`, or a comparison of a number or a severity."""
    for term in text.split(" AND "):
        match = re.fullmatch(r"\s*([\w.@]+)\s*(=~|>=|<=|=|>|<)\s*(.+?)\s*", term)
        assert match, f"unsupported filter term {term!r}"
        path, op, raw = match.groups()
        value = log_field(entry, path)
        if value is None:
            return False
        expected: Any = json.loads(raw) if raw.startswith('"') else raw
        if path == "severity":
            value, expected = SEVERITIES.index(value), SEVERITIES.index(expected)
        elif not raw.startswith('"'):
            expected = float(expected)
        if op == "=~":
            if re.search(expected, str(value)) is None:
                return False
        elif not FILTER_OPERATORS[op](value, expected):
            return False
    return True


def function_log_entry(status: int, service: str = FUNCTION_NAME) -> Dict[str, Any]:
    """The log entry Cloud Logging makes of the function's `run answered <status>` line (stdout JSON:
    `severity` becomes the entry's severity, the rest its jsonPayload), formatted by the loader's own
    handler from a record logged as loader/service.py logs it."""
    logger = logging.getLogger(LOGGER_NAME)
    record = logger.makeRecord(
        LOGGER_NAME,
        logging.ERROR if status >= 500 else logging.INFO,
        __file__,
        0,
        f"run answered {status}",
        (),
        None,
        extra={"run_id": "0123abcd4567", "http_status": status},
    )
    payload = json.loads(JsonLineHandler().format(record))
    return {
        "resource": {"type": "cloud_run_revision", "labels": {"service_name": service, "location": REGION}},
        "severity": payload.pop("severity"),
        "jsonPayload": payload,
    }


def scheduler_log_entry(severity: str, job: str = FUNCTION_NAME) -> Dict[str, Any]:
    """A Cloud Scheduler AttemptFinished entry for the job (ERROR: the call failed or got a non-2xx)."""
    return {
        "resource": {"type": "cloud_scheduler_job", "labels": {"job_id": job, "location": REGION}},
        "severity": severity,
        "jsonPayload": {
            "@type": "type.googleapis.com/google.cloud.scheduler.logging.AttemptFinished",
            "status": "PERMISSION_DENIED" if severity == "ERROR" else "OK",
        },
    }


def readme_deploy_section() -> str:
    text = README.read_text()
    match = re.search(r"<!-- deploy:start -->(.*?)<!-- deploy:end -->", text, re.S)
    assert match, "README.md has no <!-- deploy:start --> ... <!-- deploy:end --> section"
    return match.group(1)


# --- formatting ---------------------------------------------------------------------------------


@needs_terraform
def test_terraform_fmt() -> None:
    proc = subprocess.run(
        ["terraform", "fmt", "-check", "-recursive", "-diff", str(TF_DIR)],
        capture_output=True,
        text=True,
        timeout=60,
        env=TERRAFORM_ENV,
    )
    assert proc.returncode == 0, f"run `terraform fmt -recursive terraform/`:\n{proc.stdout}\n{proc.stderr}"


# --- versions and APIs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "provider, source, min_major",
    [
        pytest.param("google", "hashicorp/google", 7, id="google"),
        pytest.param("archive", "hashicorp/archive", 2, id="archive"),
        pytest.param("time", "hashicorp/time", 0, id="time"),
    ],
)
def test_provider_pinned_to_a_range(provider: str, source: str, min_major: int) -> None:
    required = block(config()["terraform"], "required_providers")[provider]
    assert required["source"] == source
    lower = re.search(r">=\s*(\d+)\.", required["version"])
    assert lower and int(lower.group(1)) >= min_major, (
        f"{provider} needs a lower bound >= {min_major}.x: {required['version']}"
    )
    assert re.search(r"<\s*\d+", required["version"]), (
        f"{provider} needs an upper bound (a range): {required['version']}"
    )


def test_terraform_version_supports_write_only_attributes() -> None:
    required = config()["terraform"]["required_version"]
    match = re.search(r">=\s*1\.(\d+)", required)
    assert match and int(match.group(1)) >= 11, f"write-only attributes need Terraform >= 1.11: {required}"


@pytest.mark.parametrize(
    "api",
    [
        "cloudfunctions.googleapis.com",
        "run.googleapis.com",
        "cloudbuild.googleapis.com",
        "artifactregistry.googleapis.com",
        "cloudscheduler.googleapis.com",
        "secretmanager.googleapis.com",
        "bigquery.googleapis.com",
        "iam.googleapis.com",
        "logging.googleapis.com",
        "storage.googleapis.com",
        "monitoring.googleapis.com",
    ],
)
def test_api_enabled(api: str) -> None:
    services = config()["resource"]["google_project_service"]
    enabled = [
        body for body in services.values() if f'"{api}"' in str(body.get("for_each", "")) or body.get("service") == api
    ]
    assert enabled, f"no google_project_service enables {api}"
    assert all(body.get("disable_on_destroy") is False for body in enabled), "set disable_on_destroy = false"


# --- the function -------------------------------------------------------------------------------


def test_entry_point_is_the_http_function_in_main() -> None:
    names = http_entry_points(ROOT / "main.py")
    assert len(names) == 1, f"expected one @functions_framework.http function in main.py, found {names}"
    build = block(resource(FUNCTION), "build_config")
    assert build["entry_point"] == names[0]
    assert build["runtime"] == "python311"


@pytest.mark.parametrize(
    "key, expected",
    [
        pytest.param("max_instance_count", 1, id="one-instance"),
        pytest.param("max_instance_request_concurrency", 1, id="one-request-at-a-time"),
        pytest.param("min_instance_count", 0, id="scales-to-zero"),
        pytest.param("ingress_settings", "${var.ingress_settings}", id="ingress-variable"),
        pytest.param("timeout_seconds", "${var.function_timeout_seconds}", id="timeout-variable"),
        pytest.param("available_memory", "${var.function_memory}", id="memory-variable"),
        pytest.param("service_account_email", "${google_service_account.function.email}", id="runs-as-function-sa"),
    ],
)
def test_service_config(key: str, expected: Any) -> None:
    assert block(resource(FUNCTION), "service_config").get(key) == expected


def test_built_by_the_build_service_account() -> None:
    assert block(resource(FUNCTION), "build_config")["service_account"] == "${google_service_account.build.id}"


def test_ingress_internal_only_by_default() -> None:
    assert config()["variable"]["ingress_settings"]["default"] == "ALLOW_INTERNAL_ONLY"


def test_env_var_names_are_settings() -> None:
    unknown = sorted(set(env_vars()) - set(SETTINGS_BY_NAME))
    assert not unknown, f"environment variables not defined in loader/environment.py SETTINGS: {unknown}"


@pytest.mark.parametrize("name", REQUIRED_DEPLOYED)
def test_required_setting_is_deployed(name: str) -> None:
    assert name in env_vars(), f"{name} is in REQUIRED_DEPLOYED but terraform/function.tf does not set it"


def test_env_vars_are_exactly_the_deployed_settings() -> None:
    deployed = {s.name for s in SETTINGS if s.deployed}
    assert set(env_vars()) == deployed, (
        f"set but not flagged deployed=True: {sorted(set(env_vars()) - deployed)}; "
        f"flagged deployed=True but not set: {sorted(deployed - set(env_vars()))}"
    )


def test_no_secret_setting_in_env() -> None:
    secret = sorted(name for name in env_vars() if SETTINGS_BY_NAME[name].secret)
    assert not secret, f"secret settings must not be plain environment variables: {secret}"


@pytest.mark.parametrize(
    "name, pattern",
    [
        pytest.param("DESTINATION", r"bigquery", id="destination"),
        pytest.param("DATASET_NAME", r"\$\{google_bigquery_dataset\.default\.dataset_id\}", id="dataset"),
        pytest.param("API_KEY_SECRET", r"\$\{google_secret_manager_secret\.api_key\.id\}/versions/latest", id="secret"),
        pytest.param("DLT_DATA_DIR", r"/tmp/.+", id="data-dir-in-tmp"),
        pytest.param(
            "DESTINATION__BIGQUERY__LOCATION", r"\$\{google_bigquery_dataset\.default\.location\}", id="location"
        ),
        pytest.param(
            "DESTINATION__BIGQUERY__CREDENTIALS__PROJECT_ID",
            r"\$\{google_bigquery_dataset\.default\.project\}",
            id="project",
        ),
        pytest.param("RUN_DEADLINE_SECONDS", r"\$\{local\.run_deadline_seconds\}", id="run-deadline"),
        pytest.param("RUN_LOCK_BUCKET", r"\$\{google_storage_bucket\.run_lock\.name\}", id="run-lock-bucket"),
        pytest.param("RUN_LOCK_TTL_SECONDS", r"\$\{local\.run_lock_ttl_seconds\}", id="run-lock-ttl"),
    ],
)
def test_env_var_value(name: str, pattern: str) -> None:
    assert re.fullmatch(pattern, str(env_vars().get(name))), f"{name} = {env_vars().get(name)!r}"


def test_dataset_default_matches_settings() -> None:
    assert config()["variable"]["dataset_name"]["default"] == SETTINGS_BY_NAME["DATASET_NAME"].default


def test_function_waits_for_the_build_grants_to_propagate() -> None:
    function_deps = resource(FUNCTION)["depends_on"]
    assert "${time_sleep.build_grants_propagation}" in function_deps, "the function must wait for the build grants"
    sleep = resource("time_sleep.build_grants_propagation")
    seconds = re.fullmatch(r"(\d+)s", sleep["create_duration"])
    assert seconds and int(seconds.group(1)) >= 60, f"IAM propagation takes minutes: {sleep['create_duration']}"
    build_grants = {f"${{{address}}}" for address, body in iam_grants() if body["member"] == SA_MEMBER.format("build")}
    assert build_grants and set(sleep["depends_on"]) == build_grants, (
        f"the pause must follow every grant of the build account: {sorted(build_grants ^ set(sleep['depends_on']))}"
    )


# --- the source zip -----------------------------------------------------------------------------


def test_archive_is_built_from_the_selected_files() -> None:
    archive = config()["data"]["archive_file"]["source"]
    assert archive["type"] == "zip"
    assert config()["locals"]["source_root"] == "${path.module}/.."
    dynamic = archive["dynamic"][0]["source"]
    assert dynamic["for_each"] == "${local.source_files}"
    content = dynamic["content"][0]
    assert content["filename"] == "${source.value}"
    assert "file(" in content["content"] and "source.value" in content["content"]


def test_archive_patterns_are_explicit() -> None:
    for pattern in archive_patterns():
        first = pattern.split("/")[0]
        assert not re.search(r"[*?\[]", first), f"pattern {pattern!r} is not rooted in a named file or folder"
        lowered = pattern.lower()
        assert not any(word in lowered for word in ("test", "secrets.toml", "venv", "__pycache__", ".pyc")), pattern


@pytest.mark.parametrize(
    "path",
    [
        ".dlt/secrets.toml",
        "tests/test_function.py",
        "tests/conftest.py",
        "loader/__pycache__/settings.cpython-311.pyc",
        "source/__pycache__/helpers.cpython-311.pyc",
        ".venv/lib/python3.11/site-packages/dlt/__init__.py",
        "terraform/.build/function-source.zip",
    ],
)
def test_archive_patterns_never_match(path: str) -> None:
    matching = [pattern for pattern in archive_patterns() if fileset_regex(pattern).fullmatch(path)]
    assert not matching, f"{path} would be deployed by {matching}"


@pytest.mark.parametrize("required", ["main.py", "requirements.txt", ".dlt/config.toml"])
def test_archive_contains(required: str) -> None:
    assert required in archive_files()


@pytest.mark.parametrize("package", ["loader", "source"])
def test_archive_contains_package(package: str) -> None:
    assert any(f.startswith(f"{package}/") and f.endswith(".py") for f in archive_files()), (
        f"no {package}/*.py in the zip"
    )


def test_archive_excludes_tests_secrets_venvs_caches() -> None:
    bad = [
        f
        for f in archive_files()
        if FORBIDDEN_PARTS & set(f.split("/")[:-1]) or FORBIDDEN_NAME.search(f.split("/")[-1])
    ]
    assert not bad, f"files that must not be deployed: {bad}"


def test_archive_includes_every_local_import() -> None:
    python_files = [ROOT / f for f in archive_files() if f.endswith(".py")]
    missing: List[str] = []
    for name in sorted(local_imports(python_files)):
        if (ROOT / f"{name}.py").is_file():
            needed = {f"{name}.py"}
        else:
            needed = {
                Path(f).as_posix()
                for f in glob.glob(f"{name}/**/*.py", root_dir=ROOT, recursive=True)
                if "__pycache__" not in f
            }
        missing += sorted(needed - set(archive_files()))
    assert not missing, f"imported by the function but not in the zip (add a pattern to local.source_files): {missing}"


def test_source_object_name_carries_the_zip_hash() -> None:
    obj = resource("google_storage_bucket_object.source")
    assert re.search(r"\$\{data\.archive_file\.source\.output_(md5|sha|sha256|base64sha256)\}", obj["name"]), obj[
        "name"
    ]
    assert obj["source"] == "${data.archive_file.source.output_path}"
    storage = block(resource(FUNCTION), "build_config", "source", "storage_source")
    assert storage == {
        "bucket": "${google_storage_bucket.source.name}",
        "object": "${google_storage_bucket_object.source.name}",
    }


@pytest.mark.parametrize("bucket", ["source", "run_lock"])
@pytest.mark.parametrize(
    "key, expected",
    [
        pytest.param("uniform_bucket_level_access", True, id="uniform-access"),
        pytest.param("public_access_prevention", "enforced", id="public-access-prevention"),
    ],
)
def test_bucket_is_private(bucket: str, key: str, expected: Any) -> None:
    assert resource(f"google_storage_bucket.{bucket}").get(key) == expected


@pytest.mark.parametrize("bucket", ["source", "run_lock"])
def test_bucket_is_versioned_and_prunes_old_versions(bucket: str) -> None:
    body = resource(f"google_storage_bucket.{bucket}")
    assert block(body, "versioning")["enabled"] is True
    rule = block(body, "lifecycle_rule")
    assert block(rule, "action")["type"] == "Delete" and block(rule, "condition")["with_state"] == "ARCHIVED"


def test_buckets_have_distinct_names() -> None:
    names = [body["name"] for body in config()["resource"]["google_storage_bucket"].values()]
    assert len(set(names)) == len(names) and all(n.startswith("${var.project_id}-${var.name}-") for n in names), names


# --- the schedule -------------------------------------------------------------------------------


def test_scheduler_calls_the_function_with_oidc() -> None:
    target = block(resource("google_cloud_scheduler_job.default"), "http_target")
    assert target["uri"] == FUNCTION_URI
    assert target["http_method"] == "POST"
    assert target["body"] == '${base64encode("{}")}'
    assert target["headers"] == {"Content-Type": "application/json"}
    token = block(target, "oidc_token")
    assert token == {"service_account_email": "${google_service_account.scheduler.email}", "audience": FUNCTION_URI}


def test_attempt_deadline_is_the_function_timeout() -> None:
    job = resource("google_cloud_scheduler_job.default")
    assert job["attempt_deadline"] == "${var.function_timeout_seconds}s"
    timeout = config()["variable"]["function_timeout_seconds"]
    assert timeout["default"] <= 1800
    assert any("<= 1800" in v["condition"] for v in timeout["validation"]), "validate function_timeout_seconds <= 1800"


def test_scheduler_retries_are_bounded() -> None:
    retry = block(resource("google_cloud_scheduler_job.default"), "retry_config")
    count = retry["retry_count"]
    if count == "${var.scheduler_retry_count}":
        variable = config()["variable"]["scheduler_retry_count"]
        assert any(re.search(r"<=\s*[1-5]\b", v["condition"]) for v in variable["validation"]), (
            "bound scheduler_retry_count"
        )
    else:
        assert isinstance(count, int) and 0 <= count <= 5
    assert retry.get("min_backoff_duration") and retry.get("max_backoff_duration")


@pytest.mark.parametrize(
    "variable, default",
    [pytest.param("schedule", "0 * * * *", id="hourly"), pytest.param("time_zone", "Etc/UTC", id="utc")],
)
def test_schedule_defaults(variable: str, default: str) -> None:
    assert config()["variable"][variable]["default"] == default


# --- IAM ----------------------------------------------------------------------------------------


def test_no_basic_roles() -> None:
    found = sorted({s for s in strings(config()) if BASIC_ROLES.search(s)})
    assert not found, f"basic roles granted: {found}"


def test_no_public_members() -> None:
    found = sorted({s for s in strings(config()) if PUBLIC_MEMBERS.search(s)})
    assert not found, f"public members: {found}"


def test_only_additive_iam_members() -> None:
    authoritative = [address for address, _ in iam_grants() if not address.split(".")[0].endswith("_iam_member")]
    assert not authoritative, f"use *_iam_member (additive), not bindings/policies: {authoritative}"


def test_run_invoker_only_for_the_scheduler_on_the_function() -> None:
    grants = grants_of("roles/run.invoker")
    assert len(grants) == 1, f"expected one run.invoker grant, found {[a for a, _ in grants]}"
    address, body = grants[0]
    assert address.split(".")[0] in ("google_cloud_run_v2_service_iam_member", "google_cloud_run_service_iam_member")
    assert body.get("name", body.get("service")) == FUNCTION_SERVICE
    assert body["member"] == SA_MEMBER.format("scheduler")


def test_secret_accessor_on_the_secret_only() -> None:
    grants = grants_of("roles/secretmanager.secretAccessor")
    assert grants, "the function cannot read the API key"
    for address, body in grants:
        assert address.startswith("google_secret_manager_secret_iam_member."), (
            f"{address}: grant on the secret, not wider"
        )
        assert "google_secret_manager_secret.api_key" in body["secret_id"]
        assert body["member"] == SA_MEMBER.format("function")


def test_data_editor_on_datasets_only() -> None:
    targets: List[str] = []
    for address, body in grants_of("roles/bigquery.dataEditor"):
        assert address.startswith("google_bigquery_dataset_iam_member."), f"{address}: grant on the dataset, not wider"
        assert body["member"] == SA_MEMBER.format("function")
        targets += list(body["for_each"].values()) if body["dataset_id"] == "${each.value}" else [body["dataset_id"]]
    assert all(re.fullmatch(r"\$\{google_bigquery_dataset\.\w+\.dataset_id\}", t) for t in targets), targets
    assert "${google_bigquery_dataset.default.dataset_id}" in targets, "the function cannot write to its dataset"


@pytest.mark.parametrize(
    "role, account, resource_type",
    [
        pytest.param("roles/bigquery.jobUser", "function", "google_project_iam_member", id="function-job-user"),
        pytest.param("roles/logging.logWriter", "build", "google_project_iam_member", id="build-log-writer"),
        pytest.param(
            "roles/artifactregistry.writer",
            "build",
            "google_artifact_registry_repository_iam_member",
            id="build-ar-writer",
        ),
        pytest.param(
            "roles/storage.objectViewer", "build", "google_storage_bucket_iam_member", id="build-source-viewer"
        ),
    ],
)
def test_grant(role: str, account: str, resource_type: str) -> None:
    found = [
        address
        for address, body in grants_of(role)
        if address.startswith(f"{resource_type}.") and body["member"] == SA_MEMBER.format(account)
    ]
    assert found, f"{role} for the {account} service account on a {resource_type}"


def test_project_level_grants_are_the_unavoidable_ones() -> None:
    allowed = {
        ("roles/bigquery.jobUser", "function"),
        ("roles/logging.logWriter", "build"),
        ("roles/storage.objectViewer", "build"),
    }
    for address, body in iam_grants():
        if not address.startswith("google_project_iam_"):
            continue
        account = re.fullmatch(r"serviceAccount:\$\{google_service_account\.(\w+)\.email\}", body["member"])
        assert account and (body["role"], account.group(1)) in allowed, (
            f"{address}: {body['role']} on the whole project"
        )
        if body["role"] == "roles/storage.objectViewer":
            # This project's bucket in this region, and its objects: no other region's bucket (a prefix would
            # match europe-west10 for europe-west1).
            expression = block(body, "condition")["expression"]
            assert expression == (
                'resource.name == "${local.gcf_sources_bucket}" || '
                'resource.name.startsWith("${local.gcf_sources_bucket}/objects/")'
            ), f"{address}: restrict to the sources bucket: {expression}"
            assert config()["locals"]["gcf_sources_bucket"] == (
                "projects/_/buckets/gcf-v2-sources-${data.google_project.current.number}-${var.region}"
            )
            assert config()["data"]["google_project"]["current"]["project_id"] == "${var.project_id}"


def test_run_lock_grant_is_the_lock_role_on_the_lock_bucket_only() -> None:
    role = resource("google_project_iam_custom_role.run_lock")
    assert sorted(role["permissions"]) == ["storage.objects.create", "storage.objects.delete", "storage.objects.get"]
    assert role["project"] == "${var.project_id}"
    granted = [
        (address, body)
        for address, body in iam_grants()
        if body["role"] == "${google_project_iam_custom_role.run_lock.id}"
    ]
    assert [address for address, _ in granted] == ["google_storage_bucket_iam_member.function_run_lock"], granted
    grant = granted[0][1]
    assert grant["bucket"] == "${google_storage_bucket.run_lock.name}" and grant["member"] == SA_MEMBER.format(
        "function"
    )
    # No other storage right for the function, anywhere.
    storage = [a for a, b in iam_grants() if b["member"] == SA_MEMBER.format("function") and "storage" in a + b["role"]]
    assert storage == ["google_storage_bucket_iam_member.function_run_lock"], storage


# --- secret and dataset -------------------------------------------------------------------------


def test_no_secret_value_in_state() -> None:
    versions = config()["resource"].get("google_secret_manager_secret_version", {})
    for name, body in versions.items():
        assert "secret_data" not in body, (
            f"google_secret_manager_secret_version.{name}: use secret_data_wo, not secret_data"
        )
        assert body["secret_data_wo"].startswith("${var.") and "secret_data_wo_version" in body
        assert "count" in body, "the Terraform-written version is opt-in (count)"
    assert "google_secret_manager_secret_version" not in config()["data"], "a data source would copy the key into state"
    api_key = config()["variable"]["api_key"]
    assert api_key.get("sensitive") is True and api_key.get("ephemeral") is True and api_key["default"] is None


def test_dataset_keeps_its_tables_on_destroy() -> None:
    dataset = resource("google_bigquery_dataset.default")
    assert dataset["dataset_id"] == "${var.dataset_name}"
    assert dataset["delete_contents_on_destroy"] is False
    assert dataset.get("location") and dataset.get("labels")


def test_secret_and_dataset_are_protected_from_destroy() -> None:
    assert config()["variable"]["deletion_protection"]["default"] is True
    assert resource("google_secret_manager_secret.api_key")["deletion_protection"] == "${var.deletion_protection}"
    policy = resource("google_bigquery_dataset.default")["deletion_policy"]
    assert policy == '${var.deletion_protection ? "PREVENT" : "DELETE"}', policy


@pytest.mark.parametrize(
    "address",
    [
        FUNCTION,
        "google_bigquery_dataset.default",
        "google_secret_manager_secret.api_key",
        "google_storage_bucket.source",
        "google_artifact_registry_repository.default",
        "google_storage_bucket.run_lock",
    ],
)
def test_labelled(address: str) -> None:
    assert resource(address).get("labels") == "${local.labels}"


def test_label_keys_use_underscores() -> None:
    keys = re.findall(r"(\w[\w-]*)\s*=", config()["locals"]["labels"])
    assert keys and all(re.fullmatch(r"[a-z][a-z0-9_]*", k) for k in keys), keys


# --- interface ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(config()["variable"]))
def test_variable_has_type_and_description(name: str) -> None:
    variable = config()["variable"][name]
    assert variable.get("type") and variable.get("description", "").strip()
    assert variable.get("default", None) != "", f'{name}: optional inputs default to null, not ""'


@pytest.mark.parametrize(
    "name",
    [
        "region",
        "schedule",
        "function_memory",
        "function_timeout_seconds",
        "ingress_settings",
        "api_profile",
        "api_auth_scheme",
        "api_key_version",
        "alert_emails",
        "success_alert_window_seconds",
    ],
)
def test_variable_is_validated(name: str) -> None:
    validations = config()["variable"][name].get("validation", [])
    assert validations and all(v.get("condition") and v.get("error_message") for v in validations)


@pytest.mark.parametrize("name", sorted(config()["output"]))
def test_output_has_description_and_reads_a_resource(name: str) -> None:
    output = config()["output"][name]
    assert output.get("description", "").strip()
    value = str(output["value"])  # a string, or a map of them
    assert "google_" in value and "var." not in value, f"{name} should read a resource attribute"


@pytest.mark.parametrize(
    "name, pattern",
    [
        pytest.param("function_uri", re.escape(FUNCTION_URI), id="uri"),
        pytest.param("dataset_id", r".*google_bigquery_dataset\.default\.dataset_id.*", id="dataset"),
        pytest.param("scheduler_job_name", r"\$\{google_cloud_scheduler_job\.default\.name\}", id="job"),
        pytest.param("secret_id", r"\$\{google_secret_manager_secret\.api_key\.id\}", id="secret"),
        pytest.param(
            "secret_add_version_command",
            r'printf %s "\$KEY" \| gcloud secrets versions add '
            r"\$\{google_secret_manager_secret\.api_key\.secret_id\} --project \S+ --data-file=-",
            id="add-secret",
        ),
        pytest.param(
            "scheduler_run_command",
            r"gcloud scheduler jobs run \$\{google_cloud_scheduler_job\.default\.name\} --location \S+ --project \S+",
            id="run-job",
        ),
        pytest.param(
            "curl_command",
            r"curl -X POST -H \"Authorization: Bearer \$\(gcloud auth print-identity-token\)\" "
            r"-H 'Content-Type: application/json' -d '\{\}' " + re.escape(FUNCTION_URI),
            id="curl",
        ),
        pytest.param("run_lock_bucket", r"\$\{google_storage_bucket\.run_lock\.name\}", id="run-lock-bucket"),
        pytest.param(
            "notification_channels",
            r"\$\{\{for email, channel in google_monitoring_notification_channel\.email : email => channel\.name\}\}",
            id="channels",
        ),
    ],
)
def test_output(name: str, pattern: str) -> None:
    assert re.fullmatch(pattern, config()["output"][name]["value"]), config()["output"][name]["value"]


def test_output_names_every_alert_policy() -> None:
    policies = config()["resource"]["google_monitoring_alert_policy"]
    expected = {name: f"${{google_monitoring_alert_policy.{name}.name}}" for name in policies}
    assert config()["output"]["alert_policies"]["value"] == expected


def test_tfvars_example_sets_required_variables_only_declared_ones() -> None:
    example = parse_hcl(TF_DIR / "terraform.tfvars.example")
    variables = config()["variable"]
    assert set(example) <= set(variables), f"unknown variables: {sorted(set(example) - set(variables))}"
    required = {name for name, body in variables.items() if "default" not in body}
    assert required <= set(example), f"required variables missing from the example: {sorted(required - set(example))}"


@pytest.mark.parametrize("kind", ["variable", "output"])
def test_readme_table_matches(kind: str) -> None:
    section = readme_deploy_section()
    heading = {"variable": "Inputs", "output": "Outputs"}[kind]
    table = re.search(rf"#+\s*{heading}\s*\n(.*?)(?:\n#|\Z)", section, re.S)
    assert table, f"README deploy section has no '{heading}' table"
    rows = set(re.findall(r"^\|\s*`(\w+)`", table.group(1), re.M))
    declared = set(config()[kind])
    assert rows == declared, (
        f"README {heading} table: missing {sorted(declared - rows)}, not in terraform {sorted(rows - declared)}"
    )


# --- inputs: validations and derived values, planned by Terraform --------------------------------

# (name, variables, expected outputs or None, the variable whose validation must fail or None)
PLAN_CASES: List[Tuple[str, Dict[str, Any], Optional[Dict[str, int]], Optional[str]]] = [
    ("defaults", {}, {"run_deadline": 1500, "run_lock_ttl": 1860, "period": 3600, "window": 7200}, None),
    ("every_15_minutes", {"schedule": "*/15 * * * *"}, {"period": 900, "window": 1800}, None),
    (
        "every_6_hours_short_timeout",
        {"schedule": "30 */6 * * *", "function_timeout_seconds": 300},
        {"period": 21600, "window": 43200, "run_deadline": 240, "run_lock_ttl": 360},
        None,
    ),
    (
        "daily_window_capped",
        {"schedule": "0 3 * * *", "function_timeout_seconds": 120},
        {"period": 86400, "window": 88200, "run_deadline": 60, "run_lock_ttl": 180},
        None,
    ),
    ("weekly_needs_a_window", {"schedule": "0 3 * * 1"}, None, "success_alert_window_seconds"),
    ("weekly_with_a_window", {"schedule": "0 3 * * 1", "success_alert_window_seconds": 86400}, {"window": 86400}, None),
    ("window_not_longer_than_period", {"success_alert_window_seconds": 3600}, None, "success_alert_window_seconds"),
    ("window_longer_than_period", {"success_alert_window_seconds": 3660}, {"window": 3660}, None),
    ("window_not_whole_minutes", {"success_alert_window_seconds": 3630}, None, "success_alert_window_seconds"),
    ("window_over_the_maximum", {"success_alert_window_seconds": 90000}, None, "success_alert_window_seconds"),
    ("timeout_leaves_no_deadline", {"function_timeout_seconds": 60}, None, "function_timeout_seconds"),
    ("key_version_without_key", {"api_key_version": 1}, None, "api_key_version"),
    ("key_version_with_key", {"api_key_version": 1, "api_key": "k"}, {"run_deadline": 1500}, None),
    ("alert_email_invalid", {"alert_emails": ["ops@example.com", "not-an-address"]}, None, "alert_emails"),
    ("alert_email_valid", {"alert_emails": ["ops@example.com"]}, {"window": 7200}, None),
]
REQUIRED_INPUTS = {
    "project_id": "my-project-1",
    "region": REGION,
    "api_base_url": "https://api.example.com",
    "api_uid": "u",
}


def hcl_value(value: Any) -> str:
    return json.dumps(value)  # strings, numbers and lists of strings are written alike in HCL


@pytest.fixture(scope="module")
def planned_inputs(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, str]:
    """`terraform test` (plan only) of variables.tf + main.tf, which need no provider: per case, "pass"
    or the failure output. One Terraform run for all cases."""
    terraform = TERRAFORM or pytest.skip("terraform CLI not on PATH")
    folder = tmp_path_factory.mktemp("inputs")
    for name in ("variables.tf", "main.tf"):
        shutil.copy(TF_DIR / name, folder / name)
    (folder / "outputs.tf").write_text(
        "".join(
            f'output "{name}" {{\n  value = local.{local}\n}}\n'
            for name, local in [
                ("run_deadline", "run_deadline_seconds"),
                ("run_lock_ttl", "run_lock_ttl_seconds"),
                ("period", "schedule_period_seconds"),
                ("window", "success_alert_window_seconds"),
            ]
        )
    )
    runs = ["variables {\n" + "".join(f"  {k} = {hcl_value(v)}\n" for k, v in REQUIRED_INPUTS.items()) + "}\n"]
    for name, variables, expected, failing in PLAN_CASES:
        body = "  command = plan\n"
        if variables:
            body += "  variables {\n" + "".join(f"    {k} = {hcl_value(v)}\n" for k, v in variables.items()) + "  }\n"
        for output, value in (expected or {}).items():
            body += (
                f'  assert {{\n    condition     = output.{output} == {value}\n    error_message = "{output}"\n  }}\n'
            )
        if failing:
            body += f"  expect_failures = [var.{failing}]\n"
        runs.append(f'run "{name}" {{\n{body}}}\n')
    (folder / "inputs.tftest.hcl").write_text("\n".join(runs))
    for command in (["init", "-input=false", "-no-color"], ["test", "-no-color"]):
        proc = subprocess.run(
            [terraform, *command], cwd=folder, capture_output=True, text=True, timeout=120, env=TERRAFORM_ENV
        )
    results = dict(re.findall(r'run "(\w+)"\.\.\. (\w+)', proc.stdout))
    assert results, f"terraform test ran no case (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return {
        name: "pass" if status == "pass" else f"{status}:\n{proc.stdout}\n{proc.stderr}"
        for name, status in results.items()
    }


@needs_terraform
@pytest.mark.parametrize("case", [c[0] for c in PLAN_CASES])
def test_inputs_plan_as_expected(planned_inputs: Dict[str, str], case: str) -> None:
    assert planned_inputs.get(case) == "pass", planned_inputs.get(case, f"case {case} did not run")


def test_defaults_agree_with_the_loader_settings() -> None:
    defaults = next(expected for name, _, expected, _ in PLAN_CASES if name == "defaults")
    assert defaults and config()["variable"]["function_timeout_seconds"]["default"] == 1800
    assert defaults["run_deadline"] == int(SETTINGS_BY_NAME["RUN_DEADLINE_SECONDS"].default or 0)
    assert defaults["run_lock_ttl"] == int(SETTINGS_BY_NAME["RUN_LOCK_TTL_SECONDS"].default or 0)


# --- alerts -------------------------------------------------------------------------------------

ALERTS = [
    # (policy, metric, condition type, resource type of the metric's log entries)
    pytest.param("failed_runs", "failed_runs", "condition_threshold", "cloud_run_revision", id="failed-runs"),
    pytest.param("no_successful_run", "successful_runs", "condition_absent", "cloud_run_revision", id="no-success"),
    pytest.param(
        "scheduler_failures", "scheduler_failures", "condition_threshold", "cloud_scheduler_job", id="scheduler"
    ),
]


@pytest.mark.parametrize("policy, metric, condition_type, resource_type", ALERTS)
def test_alert_policy_watches_its_metric(policy: str, metric: str, condition_type: str, resource_type: str) -> None:
    body = resource(f"google_monitoring_alert_policy.{policy}")
    assert "count" not in body and "for_each" not in body, "the policies exist even with no notification channel"
    assert body["notification_channels"] == "${local.alert_channels}"
    condition = block(block(body, "conditions"), condition_type)
    metric_type = f"logging.googleapis.com/user/${{google_logging_metric.{metric}.name}}"
    assert condition["filter"] == f'resource.type="{resource_type}" AND metric.type="{metric_type}"'
    aggregation = block(condition, "aggregations")
    # Summed across time series: a redeploy's new revision must not read as silence or hide a failure.
    assert aggregation["cross_series_reducer"] == "REDUCE_SUM" and aggregation["per_series_aligner"] == "ALIGN_SUM"
    if condition_type == "condition_threshold":
        assert condition["comparison"] == "COMPARISON_GT" and condition["threshold_value"] == 0
    else:
        assert condition["duration"] == "${local.success_alert_window_seconds}s"
    assert resource_type in resolve_filter(resource(f"google_logging_metric.{metric}")["filter"])


@pytest.mark.parametrize("policy", ["failed_runs", "no_successful_run", "scheduler_failures"])
def test_alert_documentation_says_what_failed_and_what_to_check(policy: str) -> None:
    documentation = block(resource(f"google_monitoring_alert_policy.{policy}"), "documentation")
    assert documentation["mime_type"] == "text/markdown" and documentation["subject"]
    content = documentation["content"].replace(
        "${local.logs_command_prefix}", config()["locals"]["logs_command_prefix"]
    )
    assert "First check" in content and re.search(r"`gcloud [^`]+`", content), content


@pytest.mark.parametrize(
    "status, failed, succeeded",
    [(500, True, False), (502, True, False), (200, False, True), (409, False, False), (400, False, False)],
)
def test_run_metrics_count_the_function_answer_lines(status: int, failed: bool, succeeded: bool) -> None:
    entry = function_log_entry(status)
    assert filter_matches(resolve_filter(resource("google_logging_metric.failed_runs")["filter"]), entry) is failed
    assert (
        filter_matches(resolve_filter(resource("google_logging_metric.successful_runs")["filter"]), entry) is succeeded
    )


@pytest.mark.parametrize("metric", ["failed_runs", "successful_runs"])
def test_run_metrics_ignore_other_services_and_other_lines(metric: str) -> None:
    text = resolve_filter(resource(f"google_logging_metric.{metric}")["filter"])
    status = 502 if metric == "failed_runs" else 200
    assert filter_matches(text, function_log_entry(status))
    assert not filter_matches(text, function_log_entry(status, service="another-service"))
    other = function_log_entry(status)
    other["jsonPayload"]["message"] = f"fetched page, upstream said {status}"
    assert not filter_matches(text, other)


def test_failed_runs_are_labelled_by_status() -> None:
    metric = resource("google_logging_metric.failed_runs")
    extractor = metric["label_extractors"]["http_status"]
    field = re.fullmatch(r"EXTRACT\(([\w.]+)\)", extractor)
    assert field and log_field(function_log_entry(502), field.group(1)) == 502, extractor
    labels = block(metric, "metric_descriptor")["labels"]
    assert [label["key"] for label in labels] == ["http_status"]
    policy = block(block(resource("google_monitoring_alert_policy.failed_runs"), "conditions"), "condition_threshold")
    assert block(policy, "aggregations")["group_by_fields"] == ["metric.label.http_status"]


@pytest.mark.parametrize(
    "entry, counted",
    [
        pytest.param(scheduler_log_entry("ERROR"), True, id="failed-attempt"),
        pytest.param(scheduler_log_entry("INFO"), False, id="successful-attempt"),
        pytest.param(scheduler_log_entry("ERROR", job="another-job"), False, id="other-job"),
        pytest.param(function_log_entry(502), False, id="function-line"),
    ],
)
def test_scheduler_metric_counts_failed_attempts_of_the_job(entry: Dict[str, Any], counted: bool) -> None:
    text = resolve_filter(resource("google_logging_metric.scheduler_failures")["filter"])
    assert filter_matches(text, entry) is counted


def test_notification_channels_come_from_alert_emails() -> None:
    assert config()["variable"]["alert_emails"]["default"] == []
    channel = resource("google_monitoring_notification_channel.email")
    assert channel["for_each"] == "${toset(var.alert_emails)}" and channel["type"] == "email"
    assert channel["labels"] == {"email_address": "${each.value}"}
    assert (
        config()["locals"]["alert_channels"]
        == "${[for channel in google_monitoring_notification_channel.email : channel.name]}"
    )


def test_readme_explains_each_alert_and_the_freshness_query() -> None:
    section = readme_deploy_section()
    for policy in ("failed_runs", "no_successful_run", "scheduler_failures"):
        title = resource(f"google_monitoring_alert_policy.{policy}")["display_name"].replace("${var.name}: ", "")
        assert title in section, f"README deploy section does not explain the alert {title!r}"
    assert re.search(r"FROM `<project>\.\w+\._loader_runs`\s+WHERE status = 'loaded'", section), (
        "freshness query missing"
    )


# --- checkov ------------------------------------------------------------------------------------


def test_checkov_reports_no_failed_check() -> None:
    checkov = checkov_bin()
    assert checkov and Path(checkov).is_file(), (
        f"checkov not found (CHECKOV_BIN={os.environ.get('CHECKOV_BIN')!r}, .venv-tools/bin/checkov, PATH): "
        "run `make test`, which installs it from requirements-tools.txt"
    )
    env = dict(os.environ)
    for name in ("BC_API_KEY", "PRISMA_API_URL", "BC_API_URL"):  # no platform account: scan locally only
        env.pop(name, None)
    env.update(
        BC_SKIP_MAPPING="TRUE",  # no guideline/metadata download
        CKV_SKIP_PACKAGE_UPDATE_CHECK="true",  # no version check against the package index
        CHECKOV_RUN_SCA_PACKAGE_SCAN_V2="false",
        CKV_VALIDATE_SECRETS="false",
        LOG_LEVEL="WARNING",
    )
    command = [
        checkov,
        "-d",
        str(TF_DIR),
        "--framework",
        "terraform",
        "-o",
        "json",
        "--quiet",
        "--compact",
        "--skip-download",
    ]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=CHECKOV_TIMEOUT_SECONDS)
    assert proc.stdout.strip(), f"checkov printed nothing (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
    report = json.loads(proc.stdout)
    reports = report if isinstance(report, list) else [report]
    summary = {k: sum(r["summary"][k] for r in reports) for k in ("passed", "failed", "skipped", "parsing_errors")}
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']}:{c['file_line_range'][0]}): {c['check_name']}"
        for r in reports
        for c in r["results"]["failed_checks"]
    ]
    assert summary["failed"] == 0 and not failed, "checkov failed checks:\n" + "\n".join(failed)
    assert summary["parsing_errors"] == 0, f"checkov could not parse some files: {summary}"
    assert summary["passed"] > 0, f"checkov passed no check (did it scan terraform/?): {summary}"
