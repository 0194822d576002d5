"""Offline checks of the Terraform deployment in terraform/.

`terraform validate`/`plan` need the providers, which cannot be downloaded on the build machines,
so the deployment is checked without them: `terraform fmt`, the structure of the configuration
(parsed with python-hcl2), the function's source zip evaluated against the real tree, and checkov's
static policies.
"""

from __future__ import annotations

import ast
import glob
import json
import os
import re
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple

import hcl2
import pytest

REPO = Path(__file__).resolve().parent.parent
TF_DIR = REPO / "terraform"
README = REPO / "README.md"
sys.path.insert(0, str(REPO))

from loader.environment import REQUIRED_DEPLOYED, SETTINGS, SETTINGS_BY_NAME  # noqa: E402

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


# --- helpers ----------------------------------------------------------------------------------


def parse_hcl(path: Path) -> Dict[str, Any]:
    """Parse one HCL file into plain dicts (blocks are lists of dicts, expressions are "${...}")."""
    with path.open() as f:
        return hcl2.load(f, serialization_options=HCL_OPTIONS)


@lru_cache(maxsize=None)
def config() -> Dict[str, Dict[str, Any]]:
    """All terraform/*.tf merged: {"resource": {type: {name: body}}, "data": ..., "variable": {name: body}, ...}."""
    merged: Dict[str, Dict[str, Any]] = {"resource": {}, "data": {}, "variable": {}, "output": {}, "locals": {}, "terraform": {}}
    for path in sorted(TF_DIR.glob("*.tf")):
        for kind, entries in parse_hcl(path).items():
            for entry in entries:
                if kind in ("resource", "data"):
                    for rtype, named in entry.items():
                        for name, body in named.items():
                            assert name not in merged[kind].setdefault(rtype, {}), f"{kind} {rtype}.{name} declared twice"
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


def fileset_regex(pattern: str) -> "re.Pattern[str]":
    """Terraform's fileset() glob as a regex: `**/` is any number of folders, `*` and `?` stay in one."""
    out = ""
    for token in re.split(r"(\*\*/|\*\*|\*|\?)", pattern):
        out += {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(token, re.escape(token))
    return re.compile(out)


@lru_cache(maxsize=None)
def archive_files() -> Tuple[str, ...]:
    """The zip's file list: the fileset patterns evaluated on the real tree (fileset matches hidden files too)."""
    found: Set[str] = set()
    for pattern in archive_patterns():
        for match in glob.glob(pattern, root_dir=REPO, recursive=True, include_hidden=True):
            if (REPO / match).is_file():
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
                if (REPO / f"{top}.py").is_file() or (REPO / top).is_dir():
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
    return [node.name for node in tree.body if isinstance(node, ast.FunctionDef) and any(map(is_http, node.decorator_list))]


def checkov_bin() -> Optional[str]:
    """CHECKOV_BIN, else the tools venv `make test` builds, else checkov on PATH."""
    if os.environ.get("CHECKOV_BIN"):
        return os.environ["CHECKOV_BIN"]
    tools = REPO / ".venv-tools" / "bin" / "checkov"
    if tools.is_file():
        return str(tools)
    return shutil.which("checkov")


def readme_deploy_section() -> str:
    text = README.read_text()
    match = re.search(r"<!-- deploy:start -->(.*?)<!-- deploy:end -->", text, re.S)
    assert match, "README.md has no <!-- deploy:start --> ... <!-- deploy:end --> section"
    return match.group(1)


# --- formatting ---------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform CLI not on PATH: fmt check not run")
def test_terraform_fmt() -> None:
    proc = subprocess.run(
        ["terraform", "fmt", "-check", "-recursive", "-diff", str(TF_DIR)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, f"run `terraform fmt -recursive terraform/`:\n{proc.stdout}\n{proc.stderr}"


# --- versions and APIs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "provider, source, min_major",
    [pytest.param("google", "hashicorp/google", 6, id="google"), pytest.param("archive", "hashicorp/archive", 2, id="archive")],
)
def test_provider_pinned_to_a_range(provider: str, source: str, min_major: int) -> None:
    required = block(config()["terraform"], "required_providers")[provider]
    assert required["source"] == source
    lower = re.search(r">=\s*(\d+)\.", required["version"])
    assert lower and int(lower.group(1)) >= min_major, f"{provider} needs a lower bound >= {min_major}.x: {required['version']}"
    assert re.search(r"<\s*\d+", required["version"]), f"{provider} needs an upper bound (a range): {required['version']}"


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
    ],
)
def test_api_enabled(api: str) -> None:
    services = config()["resource"]["google_project_service"]
    enabled = [body for body in services.values() if f'"{api}"' in str(body.get("for_each", "")) or body.get("service") == api]
    assert enabled, f"no google_project_service enables {api}"
    assert all(body.get("disable_on_destroy") is False for body in enabled), "set disable_on_destroy = false"


# --- the function -------------------------------------------------------------------------------


def test_entry_point_is_the_http_function_in_main() -> None:
    names = http_entry_points(REPO / "main.py")
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
        pytest.param("DESTINATION__BIGQUERY__LOCATION", r"\$\{google_bigquery_dataset\.default\.location\}", id="location"),
        pytest.param("DESTINATION__BIGQUERY__CREDENTIALS__PROJECT_ID", r"\$\{google_bigquery_dataset\.default\.project\}", id="project"),
    ],
)
def test_env_var_value(name: str, pattern: str) -> None:
    assert re.fullmatch(pattern, str(env_vars().get(name))), f"{name} = {env_vars().get(name)!r}"


def test_dataset_default_matches_settings() -> None:
    assert config()["variable"]["dataset_name"]["default"] == SETTINGS_BY_NAME["DATASET_NAME"].default


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
    assert any(f.startswith(f"{package}/") and f.endswith(".py") for f in archive_files()), f"no {package}/*.py in the zip"


def test_archive_excludes_tests_secrets_venvs_caches() -> None:
    bad = [f for f in archive_files() if FORBIDDEN_PARTS & set(f.split("/")[:-1]) or FORBIDDEN_NAME.search(f.split("/")[-1])]
    assert not bad, f"files that must not be deployed: {bad}"


def test_archive_includes_every_local_import() -> None:
    python_files = [REPO / f for f in archive_files() if f.endswith(".py")]
    missing: List[str] = []
    for name in sorted(local_imports(python_files)):
        if (REPO / f"{name}.py").is_file():
            needed = {f"{name}.py"}
        else:
            needed = {
                Path(f).as_posix()
                for f in glob.glob(f"{name}/**/*.py", root_dir=REPO, recursive=True)
                if "__pycache__" not in f
            }
        missing += sorted(needed - set(archive_files()))
    assert not missing, f"imported by the function but not in the zip (add a pattern to local.source_files): {missing}"


def test_source_object_name_carries_the_zip_hash() -> None:
    obj = resource("google_storage_bucket_object.source")
    assert re.search(r"\$\{data\.archive_file\.source\.output_(md5|sha|sha256|base64sha256)\}", obj["name"]), obj["name"]
    assert obj["source"] == "${data.archive_file.source.output_path}"
    storage = block(resource(FUNCTION), "build_config", "source", "storage_source")
    assert storage == {"bucket": "${google_storage_bucket.source.name}", "object": "${google_storage_bucket_object.source.name}"}


@pytest.mark.parametrize(
    "key, expected",
    [
        pytest.param("uniform_bucket_level_access", True, id="uniform-access"),
        pytest.param("public_access_prevention", "enforced", id="public-access-prevention"),
    ],
)
def test_source_bucket_is_private(key: str, expected: Any) -> None:
    assert resource("google_storage_bucket.source").get(key) == expected


def test_source_bucket_is_versioned() -> None:
    assert block(resource("google_storage_bucket.source"), "versioning")["enabled"] is True


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
        assert any(re.search(r"<=\s*[1-5]\b", v["condition"]) for v in variable["validation"]), "bound scheduler_retry_count"
    else:
        assert isinstance(count, int) and 0 <= count <= 5
    assert retry.get("min_backoff_duration") and retry.get("max_backoff_duration")


@pytest.mark.parametrize(
    "variable, default", [pytest.param("schedule", "0 * * * *", id="hourly"), pytest.param("time_zone", "Etc/UTC", id="utc")]
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
        assert address.startswith("google_secret_manager_secret_iam_member."), f"{address}: grant on the secret, not wider"
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
        pytest.param("roles/artifactregistry.writer", "build", "google_artifact_registry_repository_iam_member", id="build-ar-writer"),
        pytest.param("roles/storage.objectViewer", "build", "google_storage_bucket_iam_member", id="build-source-viewer"),
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
    allowed = {("roles/bigquery.jobUser", "function"), ("roles/logging.logWriter", "build"), ("roles/storage.objectViewer", "build")}
    for address, body in iam_grants():
        if not address.startswith("google_project_iam_"):
            continue
        account = re.fullmatch(r"serviceAccount:\$\{google_service_account\.(\w+)\.email\}", body["member"])
        assert account and (body["role"], account.group(1)) in allowed, f"{address}: {body['role']} on the whole project"
        if body["role"] == "roles/storage.objectViewer":
            assert "gcf-v2-sources-" in block(body, "condition")["expression"], f"{address}: restrict to the sources bucket"


# --- secret and dataset -------------------------------------------------------------------------


def test_no_secret_value_in_state() -> None:
    versions = config()["resource"].get("google_secret_manager_secret_version", {})
    for name, body in versions.items():
        assert "secret_data" not in body, f"google_secret_manager_secret_version.{name}: use secret_data_wo, not secret_data"
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


@pytest.mark.parametrize(
    "address",
    [
        FUNCTION,
        "google_bigquery_dataset.default",
        "google_secret_manager_secret.api_key",
        "google_storage_bucket.source",
        "google_artifact_registry_repository.default",
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
    assert variable.get("default", None) != "", f"{name}: optional inputs default to null, not \"\""


@pytest.mark.parametrize(
    "name",
    ["region", "schedule", "function_memory", "function_timeout_seconds", "ingress_settings", "api_profile", "api_auth_scheme"],
)
def test_variable_is_validated(name: str) -> None:
    validations = config()["variable"][name].get("validation", [])
    assert validations and all(v.get("condition") and v.get("error_message") for v in validations)


@pytest.mark.parametrize("name", sorted(config()["output"]))
def test_output_has_description_and_reads_a_resource(name: str) -> None:
    output = config()["output"][name]
    assert output.get("description", "").strip()
    assert "google_" in output["value"] and "var." not in output["value"], f"{name} should read a resource attribute"


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
    ],
)
def test_output(name: str, pattern: str) -> None:
    assert re.fullmatch(pattern, config()["output"][name]["value"]), config()["output"][name]["value"]


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
    assert rows == declared, f"README {heading} table: missing {sorted(declared - rows)}, not in terraform {sorted(rows - declared)}"


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
    command = [checkov, "-d", str(TF_DIR), "--framework", "terraform", "-o", "json", "--quiet", "--compact", "--skip-download"]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=CHECKOV_TIMEOUT_SECONDS)
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
