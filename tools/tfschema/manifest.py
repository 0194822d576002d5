"""A prebuilt CDK provider wheel -> the compact schema the checker reads.

The wheel's jsii assembly (`<pkg>/_jsii/*.jsii.tgz` -> `package/.jsii`, plain JSON) describes one
provider version: each resource and data source is a class whose docs link names its Terraform type,
whose constructor takes a `...Config` struct listing every settable argument and nested block, and
whose getters are every readable attribute. A struct-typed property is a block with at most one
element; an array of structs is a repeatable block; anything else is an argument. Not in the
assembly (so not checked): enum values, ConflictsWith/ExactlyOneOf, ForceNew, and whether a
plugin-framework nested attribute is written `x = {...}` (it looks like a block here).

Compact schema (JSON, one file per provider version):

    {"provider": "google", "version": "7.46.1", "wheel": "...whl",
     "provider_config": Body, "resource": {type: Body}, "data": {type: Body}}
    Body  = {"args": {name: 1 if required else 0}, "blocks": {name: Block}, "attrs": Attrs}
    Block = {"single": bool, "required": bool, "args": ..., "blocks": ...}
    Attrs = {normalized name: Attrs of the nested object, or 0 for a value}

Attribute names are normalized (`attr_key`: lower case, no underscores) because getters carry only
the camelCase name and camelCase loses where digits split words (`output_base64sha256`).
"""

from __future__ import annotations

import gzip
import io
import json
import re
import tarfile
import zipfile
from pathlib import Path
from typing import IO, Any, Dict, List, Optional, Tuple

Json = Dict[str, Any]

# "Represents a {@link https://registry.terraform.io/providers/hashicorp/google/7.46.1/docs/resources/x google_x}."
TYPE_LINK = re.compile(
    r"registry\.terraform\.io/providers/[\w-]+/(?P<provider>[\w-]+)/(?P<version>[\w.+-]+)/docs"
    r"(?:/(?P<kind>resources|data-sources)/[\w-]+)?\s+(?P<name>[\w-]+)\}"
)
# "... {@link https://.../docs/resources/x#build_config X#build_config}": the snake_case name.
ARG_ANCHOR = re.compile(r"/docs[^\s#}]*#(\w+)[\s}]")
KINDS = {"resources": "resource", "data-sources": "data"}
MAX_ATTR_DEPTH = 10


def attr_key(name: str) -> str:
    """How attribute names are compared: `serviceConfig`, `service_config` -> `serviceconfig`."""
    return name.replace("_", "").lower()


def read_assembly(wheel: Path) -> Json:
    """The jsii assembly (the parsed `package/.jsii`) inside a CDK provider wheel."""
    with zipfile.ZipFile(wheel) as archive:
        members = [n for n in archive.namelist() if "/_jsii/" in n and n.endswith(".jsii.tgz")]
        if len(members) != 1:
            raise ValueError(f"{wheel.name}: expected one <package>/_jsii/*.jsii.tgz, found {members}")
        tgz = archive.read(members[0])
    with tarfile.open(fileobj=io.BytesIO(tgz)) as tar:
        assembly = json.load(_member(tar, "package/.jsii", wheel))
        # Large assemblies may be stored gzipped behind a small redirect file.
        if assembly.get("schema") == "jsii/file-redirect":
            raw = _member(tar, f"package/{assembly['filename']}", wheel).read()
            assembly = json.loads(gzip.decompress(raw) if assembly.get("compression") == "gzip" else raw)
    return assembly


def _member(tar: tarfile.TarFile, name: str, wheel: Path) -> IO[bytes]:
    member = tar.extractfile(name)
    if member is None:
        raise ValueError(f"{wheel.name}: no {name} in its jsii tarball")
    return member


def build_schema(wheel: Path) -> Json:
    """The compact schema of the provider version packaged in `wheel`."""
    return Assembly(read_assembly(wheel)).schema(wheel.name)


class Assembly:
    """Walks one jsii assembly's types."""

    def __init__(self, assembly: Json) -> None:
        self.types: Dict[str, Json] = assembly["types"]

    def schema(self, wheel_name: str) -> Json:
        out: Json = {
            "provider": None,
            "version": None,
            "wheel": wheel_name,
            "provider_config": None,
            "resource": {},
            "data": {},
        }
        for fqn, jtype in self.types.items():
            base = jtype.get("base", "").rsplit(".", 1)[-1]
            if base not in ("TerraformResource", "TerraformDataSource", "TerraformProvider"):
                continue
            link = TYPE_LINK.search(jtype.get("docs", {}).get("summary", ""))
            config = self._config_struct(jtype)
            if link is None or config is None:
                continue
            body = self._struct_body(config)
            if base == "TerraformProvider":
                out.update(provider=link["name"], version=link["version"], provider_config=body)
            else:
                body["attrs"] = self._class_attrs(fqn, 0)
                out[KINDS[link["kind"] or ""]][link["name"]] = body
        if out["provider"] is None:
            raise ValueError(f"{wheel_name}: no provider class in the jsii assembly: is this a CDK provider wheel?")
        return out

    def _config_struct(self, jtype: Json) -> Optional[str]:
        for parameter in jtype.get("initializer", {}).get("parameters", []):
            if parameter["name"] == "config":
                return parameter["type"].get("fqn")
        return None

    def _is_struct(self, fqn: Optional[str]) -> bool:
        return fqn is not None and self.types.get(fqn, {}).get("datatype") is True

    def _struct_of(self, jtype: Json) -> Tuple[Optional[str], bool]:
        """(struct fqn, repeatable) when a property's type is a block; (None, False) for an argument."""
        if self._is_struct(jtype.get("fqn")):
            return jtype["fqn"], False
        collection = jtype.get("collection")
        if collection and collection["kind"] == "array" and self._is_struct(collection["elementtype"].get("fqn")):
            return collection["elementtype"]["fqn"], True
        for member in jtype.get("union", {}).get("types", []):
            found = self._struct_of(member)
            if found[0]:
                return found
        return None, False

    def _properties(self, fqn: str) -> List[Json]:
        """A struct's properties, with those of the structs it extends within this assembly."""
        jtype = self.types[fqn]
        inherited = [
            p for parent in jtype.get("interfaces", []) if parent in self.types for p in self._properties(parent)
        ]
        return inherited + list(jtype.get("properties", []))

    def _struct_body(self, fqn: str) -> Json:
        args: Dict[str, int] = {}
        blocks: Dict[str, Json] = {}
        for prop in self._properties(fqn):
            name = _snake_name(prop)
            struct, repeatable = self._struct_of(prop["type"])
            required = not prop.get("optional", False)
            if struct:
                blocks[name] = {"single": not repeatable, "required": required, **self._struct_body(struct)}
            else:
                args[name] = int(required)
        return {"args": args, "blocks": blocks}

    def _class_attrs(self, fqn: str, depth: int) -> Json:
        """Readable attributes of a resource/data class or of a nested output object."""
        props = [p for p in self.types[fqn].get("properties", []) if not p.get("static") and not p.get("protected")]
        names = {p["name"] for p in props}
        attrs: Json = {}
        for prop in props:
            name = prop["name"]
            if name == "internalValue" or (name.endswith("Input") and name[: -len("Input")] in names):
                continue  # the CDK's own plumbing, not Terraform attributes
            attrs[attr_key(name)] = self._nested_attrs(prop["type"], depth + 1)
        return attrs

    def _nested_attrs(self, jtype: Json, depth: int) -> Any:
        fqn = jtype.get("fqn")
        if not fqn or fqn not in self.types or depth > MAX_ATTR_DEPTH:
            return 0
        jclass = self.types[fqn]
        base = jclass.get("base", "").rsplit(".", 1)[-1]
        if base == "ComplexObject":
            return self._class_attrs(fqn, depth)
        if base in ("ComplexList", "ComplexMap"):  # x[0] / x["key"] -> get(index) returns the element's class
            for method in jclass.get("methods", []):
                if method["name"] == "get" and "returns" in method:
                    return self._nested_attrs(method["returns"]["type"], depth)
        return 0


def _snake_name(prop: Json) -> str:
    """The Terraform name of a config property: the docs anchor, else camelCase -> snake_case."""
    docs = prop.get("docs", {})
    anchor = ARG_ANCHOR.search(docs.get("remarks", "") + " " + docs.get("summary", ""))
    if anchor:
        return anchor.group(1)
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", prop["name"]).lower()
