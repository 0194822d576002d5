"""terraform/ against the Terraform providers' own schemas, at both ends of each pinned range, and
the checker (tools/tfschema) itself: broken copies of the module fail with file and line.

The schemas come from the prebuilt CDK provider wheels on the package index; `make tfschema` (part
of `make test`) downloads them and caches a compact copy in .cache/tfschema (or $TFSCHEMA_CACHE).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from functools import cache
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

from tests.helpers import ROOT
from tools.tfschema.cache import WHEELS_FILE, cached_versions, load, read_pins
from tools.tfschema.check import Problem, check_module
from tools.tfschema.manifest import build_schema
from tools.tfschema.ranges import (
    ends,
    lower_bound,
    parse_constraint,
    parse_version,
    range_ends,
    required_providers,
    satisfies,
)

TF_DIR = ROOT / "terraform"
CACHE = Path(os.environ.get("TFSCHEMA_CACHE") or ROOT / ".cache" / "tfschema")

Json = Dict[str, Any]


@cache
def available() -> Dict[str, Dict[Tuple[int, int, int], Path]]:
    try:
        return cached_versions(CACHE)
    except FileNotFoundError as error:
        pytest.fail(str(error))


@cache
def schemas_at(end: str) -> Dict[str, Json]:
    """{provider: schema} at the "lower" or "upper" end of terraform/versions.tf's ranges."""
    versions = range_ends(TF_DIR, available())[end]
    return {name: load(available()[name][version]) for name, version in versions.items()}


def show(problems: List[Problem]) -> str:
    return "\n".join(map(str, problems)) or "(no problem found)"


# --- the deployment ---------------------------------------------------------------------------


@pytest.mark.parametrize("end", ["lower", "upper"])
def test_terraform_matches_the_provider_schemas(end: str) -> None:
    problems = check_module(TF_DIR, schemas_at(end))
    versions = {name: schema["version"] for name, schema in schemas_at(end).items()}
    assert not problems, f"terraform/ against {versions}:\n{show(problems)}"


@pytest.mark.parametrize("provider", sorted(required_providers(TF_DIR)))
def test_schemas_are_the_ends_of_the_pinned_range(provider: str) -> None:
    constraint = required_providers(TF_DIR)[provider]["version"]
    lowest, highest = ends(constraint, available().get(provider, {}))
    assert lowest == lower_bound(constraint), (
        f"{provider} {constraint}: the lowest cached schema is {lowest}, not the lower bound: "
        "add the CDK wheel of that version to tools/tfschema/wheels.txt"
    )
    ceiling = [bound for op, bound, _ in parse_constraint(constraint) if op == "<"]
    assert ceiling, f"{provider} {constraint}: pin an upper bound"
    assert highest[0] == ceiling[0][0] - 1 and highest > lowest, (
        f"{provider} {constraint}: the highest cached schema {highest} is not the newest major below {ceiling[0]}"
    )


def test_wheel_pins_are_exact() -> None:
    pins = read_pins(WHEELS_FILE)
    assert pins and all(name.startswith(("cdktn-provider-", "cdktf-cdktf-provider-")) for name, _ in pins), pins


# --- the checker on broken copies of the module -----------------------------------------------


def broken_copy(tmp_path: Path, file: str, old: str, new: str) -> int:
    """terraform/ copied with `old` replaced by `new` (once) in `file`; returns the line where `new` starts."""
    folder = tmp_path / "terraform"
    folder.mkdir()
    for path in TF_DIR.glob("*.tf"):
        shutil.copy(path, folder / path.name)
    text = (folder / file).read_text()
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {file}: make the test's anchor unique"
    (folder / file).write_text(text.replace(old, new))
    return text[: text.index(old)].count("\n") + 1


BROKEN = [
    # (file, old, new, line offset from where `new` starts, expected message part)
    pytest.param(
        "scheduler.tf",
        "  schedule    = var.schedule\n",
        '  colour      = "blue"\n  schedule    = var.schedule\n',
        0,
        "unknown argument `colour`",
        id="unknown-argument",
    ),
    pytest.param(
        "secret.tf",
        '  secret_id = "${var.name}-api-key"\n',
        "",
        -1,
        "missing required argument `secret_id`",
        id="missing-required-argument",
    ),
    pytest.param(
        "outputs.tf",
        "  value       = google_cloudfunctions2_function.default.service_config[0].uri\n",
        "  value       = google_cloudfunctions2_function.default.service_config[0].url\n",
        0,
        "has no attribute `url`",
        id="bad-attribute-reference",
    ),
    pytest.param(
        "iam.tf",
        "  bucket = google_storage_bucket.run_lock.name\n",
        "  bucket = google_storage_bucket.lock.name\n",
        0,
        "no resource `google_storage_bucket.lock` is declared",
        id="undeclared-resource-reference",
    ),
    pytest.param(
        "iam.tf",
        "gcf-v2-sources-${data.google_project.current.number}-",
        "gcf-v2-sources-${data.google_project.current.numbr}-",
        0,
        "has no attribute `numbr`",
        id="bad-data-source-reference",
    ),
    pytest.param(
        "monitoring.tf",
        "Cloud Scheduler's job `${google_cloud_scheduler_job.default.name}` did not",
        "Cloud Scheduler's job `${google_cloud_scheduler_job.default.nam}` did not",
        0,
        "has no attribute `nam`",
        id="bad-reference-in-heredoc",
    ),
    pytest.param(
        "main.tf",
        "coalesce(var.bigquery_location, var.region)",
        "coalesce(var.bigquery_location, var.regoin)",
        0,
        "no variable `regoin`",
        id="undeclared-variable",
    ),
    pytest.param(
        "lock.tf",
        "  versioning {\n    enabled = true\n  }\n",
        "  versioning {\n    enabled = true\n  }\n  versioning {\n    enabled = false\n  }\n",
        3,
        "block `versioning` may appear once only",
        id="repeated-single-block",
    ),
    pytest.param(
        "lock.tf",
        "  versioning {\n    enabled = true\n  }\n",
        "  versioning = { enabled = true }\n",
        0,
        "`versioning` is a block",
        id="block-written-as-argument",
    ),
    pytest.param(
        "secret.tf",
        "  labels    = local.labels\n",
        '  labels {\n    app = "x"\n  }\n',
        0,
        "`labels` is an argument",
        id="argument-written-as-block",
    ),
    pytest.param(
        "storage.tf",
        '  dynamic "source" {\n',
        '  dynamic "sources" {\n',
        0,
        'dynamic "sources"',
        id="unknown-dynamic-block",
    ),
    pytest.param(
        "storage.tf",
        "      filename = source.value\n",
        "      file_name = source.value\n",
        0,
        "unknown argument `file_name`",
        id="unknown-argument-in-dynamic-content",
    ),
    pytest.param(
        "lock.tf",
        'resource "google_storage_bucket" "run_lock" {\n',
        'resource "google_storage_buckets" "run_lock" {\n',
        0,
        "unknown resource type `google_storage_buckets`",
        id="unknown-resource-type",
    ),
    pytest.param(
        "scheduler.tf",
        "    uri         = google_cloudfunctions2_function.default.service_config[0].uri\n",
        "",
        -2,
        "http_target: missing required argument `uri`",
        id="missing-required-nested-argument",
    ),
]


@pytest.mark.parametrize("file, old, new, offset, message", BROKEN)
def test_checker_reports_a_broken_copy_with_file_and_line(
    tmp_path: Path, file: str, old: str, new: str, offset: int, message: str
) -> None:
    line = broken_copy(tmp_path, file, old, new) + offset
    problems = check_module(tmp_path / "terraform", schemas_at("upper"))
    found = [p for p in problems if message in p.message]
    assert found, f"no problem saying {message!r}:\n{show(problems)}"
    assert any(p.file.name == file and p.line == line for p in found), f"expected {file}:{line}:\n{show(found)}"


def test_checker_command_fails_on_a_broken_copy_and_passes_on_the_module(tmp_path: Path) -> None:
    line = broken_copy(
        tmp_path, "scheduler.tf", "  schedule    = var.schedule\n", "  schedule    = var.schedule\n  colour = 1\n"
    )
    command = [sys.executable, "-m", "tools.tfschema", "check", "--cache", str(CACHE)]
    broken = subprocess.run(
        [*command, str(tmp_path / "terraform")], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert f"scheduler.tf:{line + 1}: google_cloud_scheduler_job.default: unknown argument `colour`" in broken.stdout
    assert "lower (" in broken.stdout and "upper (" in broken.stdout, broken.stdout
    good = subprocess.run([*command, str(TF_DIR)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert good.returncode == 0 and good.stdout.count(": 0 problem(s)") == 2, good.stdout + good.stderr


# --- the checker on a small schema ----------------------------------------------------------------

SMALL_SCHEMA: Json = {
    "provider": "demo",
    "version": "1.2.3",
    "wheel": "test",
    "provider_config": {"args": {"region": 0}, "blocks": {}},
    "resource": {
        "demo_thing": {
            "args": {"name": 1, "labels": 0},
            "blocks": {
                "settings": {"single": True, "required": True, "args": {"tier": 1}, "blocks": {}},
                "rule": {"single": False, "required": False, "args": {"action": 1}, "blocks": {}},
            },
            "attrs": {"name": 0, "labels": 0, "selflink": 0, "settings": {"tier": 0}},
        }
    },
    "data": {},
}


def check_text(tmp_path: Path, text: str) -> List[str]:
    (tmp_path / "main.tf").write_text(text)
    return [f"{p.line}: {p.message}" for p in check_module(tmp_path, {"demo": SMALL_SCHEMA})]


def test_checker_accepts_meta_arguments_dynamic_blocks_and_indexed_references(tmp_path: Path) -> None:
    problems = check_text(
        tmp_path,
        """
provider "demo" {
  region = "x"
  alias  = "second"
}
resource "demo_thing" "a" {
  count    = 2
  provider = demo.second
  name     = "a${count.index}"
  settings {
    tier = 1
  }
  dynamic "rule" {
    for_each = ["allow", "deny"]
    iterator = r
    content {
      action = r.value
    }
  }
  lifecycle {
    create_before_destroy = true
  }
}
output "tiers" {
  value = [demo_thing.a[0].settings[0].tier, demo_thing.a[*].self_link, demo_thing.a[1].labels["k"]]
}
""",
    )
    assert problems == []


def test_checker_requires_required_blocks_and_names_the_line(tmp_path: Path) -> None:
    problems = check_text(
        tmp_path,
        """resource "demo_thing" "a" {
  name = "a"
  rule {
    action = "x"
  }
  rule {
  }
}
""",
    )
    assert problems == [
        "1: demo_thing.a: missing required block `settings`",
        "6: demo_thing.a.rule: missing required argument `action`",
    ]


def test_checker_reports_a_syntax_error_with_its_line(tmp_path: Path) -> None:
    problems = check_text(tmp_path, 'resource "demo_thing" "a" {\n  name = "a"\n  settings = \n}\n')
    assert len(problems) == 1 and problems[0].startswith("3: HCL syntax error"), problems


def test_checker_reports_a_provider_without_schema(tmp_path: Path) -> None:
    problems = check_text(tmp_path, 'resource "other_thing" "a" {\n  name = "a"\n}\n')
    assert problems == ["1: resource type `other_thing`: no schema loaded for provider `other`"]


# --- reading the CDK wheels -----------------------------------------------------------------------


def fake_cdk_wheel(path: Path, redirect: bool) -> Path:
    """A wheel shaped like a prebuilt CDK provider package, with a two-type jsii assembly."""
    link = "https://registry.terraform.io/providers/hashicorp/demo/1.2.3/docs"

    def prop(name: str, jtype: Json, anchor: str = "", optional: bool = True) -> Json:
        docs = (
            {"remarks": f"Docs at Terraform Registry: {{@link {link}/resources/thing#{anchor} Thing#{anchor}}}"}
            if anchor
            else {}
        )
        return {"name": name, "type": jtype, "optional": optional, "docs": docs}

    string = {"primitive": "string"}
    types = {
        "p.provider.DemoProvider": {
            "kind": "class",
            "base": "cdktf.TerraformProvider",
            "docs": {"summary": f"Represents a {{@link {link} demo}}."},
            "initializer": {"parameters": [{"name": "config", "type": {"fqn": "p.provider.DemoProviderConfig"}}]},
        },
        "p.provider.DemoProviderConfig": {
            "kind": "interface",
            "datatype": True,
            "properties": [prop("region", string)],
        },
        "p.thing.Thing": {
            "kind": "class",
            "base": "cdktf.TerraformResource",
            "docs": {"summary": f"Represents a {{@link {link}/resources/thing demo_thing}}."},
            "initializer": {"parameters": [{"name": "config", "type": {"fqn": "p.thing.ThingConfig"}}]},
            "properties": [
                prop("nameInput", string),
                prop("name", string),
                prop("selfLink", string),
                prop("settings", {"fqn": "p.thing.ThingSettingsOutputReference"}),
                prop("tfResourceType", string) | {"static": True},
            ],
        },
        "p.thing.ThingConfig": {
            "kind": "interface",
            "datatype": True,
            "properties": [
                prop("name", string, "name", optional=False),
                prop("forEachAttribute", string, "for_each"),
                prop("settings", {"fqn": "p.thing.ThingSettings"}, "settings", optional=False),
                prop(
                    "rule",
                    {
                        "union": {
                            "types": [
                                {"fqn": "cdktf.IResolvable"},
                                {"collection": {"kind": "array", "elementtype": {"fqn": "p.thing.ThingRule"}}},
                            ]
                        }
                    },
                    "rule",
                ),
            ],
        },
        "p.thing.ThingSettings": {
            "kind": "interface",
            "datatype": True,
            "properties": [prop("tier", {"primitive": "number"}, "tier", False)],
        },
        "p.thing.ThingRule": {"kind": "interface", "datatype": True, "properties": [prop("action", string, "action")]},
        "p.thing.ThingSettingsOutputReference": {
            "kind": "class",
            "base": "cdktf.ComplexObject",
            "properties": [prop("internalValue", string), prop("tier", {"primitive": "number"})],
        },
    }
    assembly = json.dumps({"schema": "jsii/0.10.0", "name": "demo", "types": types}).encode()
    tgz = io.BytesIO()
    with tarfile.open(fileobj=tgz, mode="w:gz") as tar:
        files = {"package/.jsii": assembly}
        if redirect:
            redirect_file = {"schema": "jsii/file-redirect", "compression": "gzip", "filename": ".jsii.gz"}
            files = {"package/.jsii": json.dumps(redirect_file).encode(), "package/.jsii.gz": gzip.compress(assembly)}
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("demo_pkg/__init__.py", "")
        wheel.writestr("demo_pkg/_jsii/provider-demo@1.0.0.jsii.tgz", tgz.getvalue())
    return path


@pytest.mark.parametrize("redirect", [False, True], ids=["plain-assembly", "gzip-redirect"])
def test_manifest_reads_types_arguments_blocks_and_attributes(tmp_path: Path, redirect: bool) -> None:
    schema = build_schema(fake_cdk_wheel(tmp_path / "demo_pkg-1.0.0-py3-none-any.whl", redirect))
    assert (schema["provider"], schema["version"]) == ("demo", "1.2.3")
    assert schema["provider_config"] == {"args": {"region": 0}, "blocks": {}}
    thing = schema["resource"]["demo_thing"]
    assert thing["args"] == {"name": 1, "for_each": 0}  # the docs anchor gives the Terraform name
    assert thing["blocks"] == {
        "settings": {"single": True, "required": True, "args": {"tier": 1}, "blocks": {}},
        "rule": {"single": False, "required": False, "args": {"action": 0}, "blocks": {}},
    }
    assert thing["attrs"] == {
        "name": 0,
        "selflink": 0,
        "settings": {"tier": 0},
    }  # no *Input, static or internal getters


def test_manifest_rejects_a_wheel_without_assembly(tmp_path: Path) -> None:
    path = tmp_path / "other-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("other/__init__.py", "")
    with pytest.raises(ValueError, match="expected one <package>/_jsii/"):
        build_schema(path)


# --- version ranges -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "version, constraint, expected",
    [
        ("7.33.0", ">= 7.33, < 8.0", True),
        ("7.32.9", ">= 7.33, < 8.0", False),
        ("8.0.0", ">= 7.33, < 8.0", False),
        ("2.9.0", "~> 2.4", True),
        ("3.0.0", "~> 2.4", False),
        ("2.4.9", "~> 2.4.1", True),
        ("2.5.0", "~> 2.4.1", False),
        ("0.13.1", "0.13.1", True),
        ("0.13.1", "!= 0.13.1", False),
    ],
)
def test_version_constraints(version: str, constraint: str, expected: bool) -> None:
    assert satisfies(parse_version(version), constraint) is expected


def test_range_ends_and_lower_bound() -> None:
    versions = [parse_version(v) for v in ("6.50.0", "7.33.0", "7.40.1", "7.46.1", "8.7.0")]
    assert ends(">= 7.33, < 8.0", versions) == ((7, 33, 0), (7, 46, 1))
    assert lower_bound(">= 7.33, < 8.0") == (7, 33, 0)
    with pytest.raises(LookupError):
        ends(">= 9.0", versions)
