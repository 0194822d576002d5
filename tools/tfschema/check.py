"""Check a Terraform folder against provider schemas (see manifest.py for their shape).

Every resource, data and provider block: a known type; known arguments and nested blocks (inside
`dynamic` too); required ones present; a block written as a block and an argument as an argument;
a single block not repeated. Every reference `<type>.<name>.<attr>...` and `data.<type>.<name>...`
names a declared resource and attributes its type has; `var.x` and `local.x` are declared.
"""

from __future__ import annotations

import difflib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple

from tools.tfschema.manifest import attr_key
from tools.tfschema.module import Block, HclSyntaxError, Reference, read_module

Json = Dict[str, Any]
META_ARGUMENTS = {
    "resource": {"count", "for_each", "depends_on", "provider"},
    "data": {"count", "for_each", "depends_on", "provider"},
    "provider": {"alias"},
}
META_BLOCKS = {"resource": {"lifecycle", "provisioner", "connection"}, "data": {"lifecycle"}, "provider": set()}
DYNAMIC_ARGUMENTS = {"for_each", "iterator", "labels"}
# Roots of references that are not resources (the iterator of a `dynamic` block is skipped too).
NOT_RESOURCES = {"var", "local", "module", "data", "path", "terraform", "count", "each", "self"}


@dataclass(frozen=True)
class Problem:
    file: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


def check_module(folder: Path, schemas: Dict[str, Json]) -> List[Problem]:
    """Problems of the *.tf files in `folder` against `schemas` (provider name -> compact schema)."""
    try:
        blocks = read_module(folder)
    except HclSyntaxError as error:
        return [Problem(error.file, error.line, f"HCL syntax error: {error.detail}")]
    return Checker(blocks, schemas).run()


def _hint(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean `{close[0]}`?)" if close else ""


class Checker:
    def __init__(self, blocks: List[Block], schemas: Dict[str, Json]) -> None:
        self.blocks = blocks
        self.schemas = schemas
        self.problems: List[Problem] = []
        self.declared: Dict[str, Dict[Tuple[str, str], Block]] = {"resource": {}, "data": {}}
        for block in blocks:
            if block.kind in self.declared and len(block.labels) == 2:
                self.declared[block.kind][(block.labels[0], block.labels[1])] = block
        self.variables = {b.labels[0] for b in blocks if b.kind == "variable" and b.labels}
        self.locals = {a.name for b in blocks if b.kind == "locals" for a in b.attributes}

    def problem(self, block: Block, line: int, message: str) -> None:
        self.problems.append(Problem(block.file, line, message))

    def run(self) -> List[Problem]:
        for block in self.blocks:
            if block.kind in ("resource", "data") and len(block.labels) == 2:
                body = self.type_schema(block.kind, block.labels[0], block)
                if body is not None:
                    self.check_body(block, body, block.kind, f"{block.labels[0]}.{block.labels[1]}")
            elif block.kind == "provider" and block.labels:
                schema = self.schemas.get(block.labels[0])
                if schema is None:
                    self.problem(block, block.line, f"provider `{block.labels[0]}`: no schema loaded for it")
                else:
                    self.check_body(block, schema["provider_config"], "provider", f"provider {block.labels[0]}")
            self.check_references(block)
        return sorted(self.problems, key=lambda p: (str(p.file), p.line, p.message))

    # --- blocks ---------------------------------------------------------------------------------

    def provider_of(self, rtype: str, block: Optional[Block]) -> str:
        """The provider's local name: the `provider` meta-argument's (google.west -> google), else the type's prefix."""
        attribute = block.attribute("provider") if block else None
        if attribute and attribute.references:
            return attribute.references[0].root
        return rtype.split("_", 1)[0]

    def type_schema(self, kind: str, rtype: str, block: Optional[Block]) -> Optional[Json]:
        provider = self.provider_of(rtype, block)
        schema = self.schemas.get(provider)
        if schema is None:
            if block is not None:
                self.problem(block, block.line, f"{kind} type `{rtype}`: no schema loaded for provider `{provider}`")
            return None
        body = schema[kind].get(rtype)
        if body is None and block is not None:
            where = f"{provider} {schema['version']}"
            self.problem(block, block.line, f"unknown {kind} type `{rtype}` in {where}{_hint(rtype, schema[kind])}")
        return body

    def check_body(self, block: Block, schema: Json, kind: str, where: str) -> None:
        """Arguments and nested blocks of `block` against `schema`; `kind` selects the meta-arguments allowed."""
        args: Dict[str, int] = schema["args"]
        blocks: Dict[str, Json] = schema["blocks"]
        seen: Dict[str, int] = {}
        for attribute in block.attributes:
            name, line = attribute.name, attribute.line
            if name in seen:
                self.problem(block, line, f"{where}: argument `{name}` set twice (first at line {seen[name]})")
            seen.setdefault(name, line)
            if name in META_ARGUMENTS.get(kind, ()) or name in args:
                continue
            if name in blocks:
                self.problem(block, line, f"{where}: `{name}` is a block: write `{name} {{ ... }}`, not `{name} = ...`")
            else:
                self.problem(block, line, f"{where}: unknown argument `{name}`{_hint(name, list(args) + list(blocks))}")
        present: Set[str] = set()
        first_line: Dict[str, int] = {}
        counts: Counter = Counter()
        for child in block.blocks:
            if child.kind in META_BLOCKS.get(kind, ()):
                continue
            if child.kind == "dynamic":
                self.check_dynamic(child, blocks, args, where)
                present.update(child.labels[:1])
                continue
            sub = blocks.get(child.kind)
            if sub is None:
                if child.kind in args:
                    message = f"`{child.kind}` is an argument: write `{child.kind} = ...`, not a block"
                else:
                    message = f"unknown block `{child.kind}`{_hint(child.kind, list(blocks) + list(args))}"
                self.problem(child, child.line, f"{where}: {message}")
                continue
            counts[child.kind] += 1
            first_line.setdefault(child.kind, child.line)
            if sub["single"] and counts[child.kind] == 2:
                self.problem(
                    child,
                    child.line,
                    f"{where}: block `{child.kind}` may appear once only (first at line {first_line[child.kind]})",
                )
            present.add(child.kind)
            self.check_body(child, sub, "block", f"{where}.{child.kind}")
        for name, required in args.items():
            if required and name not in seen:
                self.problem(block, block.line, f"{where}: missing required argument `{name}`")
        for name, sub in blocks.items():
            if sub["required"] and name not in present:
                self.problem(block, block.line, f"{where}: missing required block `{name}`")

    def check_dynamic(self, dynamic: Block, blocks: Dict[str, Json], args: Dict[str, int], where: str) -> None:
        name = dynamic.labels[0] if dynamic.labels else ""
        sub = blocks.get(name)
        if sub is None:
            kind = "an argument, not a block" if name in args else f"not a block here{_hint(name, blocks)}"
            self.problem(dynamic, dynamic.line, f'{where}: dynamic "{name}": `{name}` is {kind}')
            return
        for attribute in dynamic.attributes:
            if attribute.name not in DYNAMIC_ARGUMENTS:
                self.problem(dynamic, attribute.line, f'{where}: dynamic "{name}": unknown argument `{attribute.name}`')
        contents = [b for b in dynamic.blocks if b.kind == "content"]
        if len(contents) != 1:
            self.problem(dynamic, dynamic.line, f'{where}: dynamic "{name}" needs exactly one `content` block')
        for content in contents:
            self.check_body(content, sub, "block", f"{where}.{name}")

    # --- references -----------------------------------------------------------------------------

    def check_references(self, block: Block) -> None:
        iterators = self.dynamic_iterators(block)
        for ref in block.references():
            if ref.root in iterators or not ref.steps or ref.steps[0] is None:
                continue
            if ref.root == "var" and ref.steps[0] not in self.variables:
                self.problem(block, ref.line, f"`{ref.text()}`: no variable `{ref.steps[0]}` is declared")
            elif ref.root == "local" and ref.steps[0] not in self.locals:
                self.problem(block, ref.line, f"`{ref.text()}`: no local value `{ref.steps[0]}` is declared")
            elif ref.root == "data" and len(ref.steps) >= 2 and ref.steps[1] is not None:
                self.check_resource_reference(block, ref, "data", ref.steps[0], ref.steps[1], ref.steps[2:])
            elif ref.root not in NOT_RESOURCES and self.is_resource_type(ref.root):
                self.check_resource_reference(block, ref, "resource", ref.root, ref.steps[0], ref.steps[1:])

    def dynamic_iterators(self, block: Block) -> Set[str]:
        names: Set[str] = set()
        for child in block.blocks:
            if child.kind == "dynamic" and child.labels:
                iterator = child.attribute("iterator")
                names.add(iterator.references[0].root if iterator and iterator.references else child.labels[0])
            names |= self.dynamic_iterators(child)
        return names

    def is_resource_type(self, name: str) -> bool:
        return any(key[0] == name for key in self.declared["resource"]) or any(
            name in schema["resource"] or name.startswith(f"{provider}_") for provider, schema in self.schemas.items()
        )

    def check_resource_reference(
        self, block: Block, ref: Reference, kind: str, rtype: str, name: Optional[str], path: Tuple[Optional[str], ...]
    ) -> None:
        prefix = "data." if kind == "data" else ""
        if (rtype, name) not in self.declared[kind]:
            self.problem(block, ref.line, f"`{ref.text()}`: no {kind} `{prefix}{rtype}.{name}` is declared")
            return
        body = self.type_schema(kind, rtype, None)
        if body is None:
            return  # the declaration itself is reported
        attrs: Any = body["attrs"]
        walked = f"{prefix}{rtype}.{name}"
        for step in path:
            if step is None:
                continue  # [0], ["key"], [*]: an element of the same object
            if not isinstance(attrs, dict):
                return  # a plain value (string, map, list of strings): what follows indexes into it
            if attr_key(step) not in attrs:
                self.problem(block, ref.line, f"`{ref.text()}`: `{walked}` has no attribute `{step}`")
                return
            attrs = attrs[attr_key(step)]
            walked += f".{step}"
