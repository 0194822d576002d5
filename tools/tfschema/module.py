"""A Terraform folder as blocks, arguments and references, each with its file and line.

python-hcl2's plain-dict output loses line numbers and mixes blocks with object arguments, so this
reads its parse tree (`hcl2.parses_to_tree`) instead. A reference is a traversal such as
`google_x.name[0].attr.sub`: its root name and its steps (a name, or None for an index or splat).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import List, Optional, Tuple

import hcl2
from lark import Token, Tree
from lark.exceptions import LarkError

Step = Optional[str]  # an attribute name, or None for [index], [*] or .*
CHAINS = {"get_attr_expr_term", "index_expr_term", "attr_splat_expr_term", "full_splat_expr_term"}
HEREDOCS = {"HEREDOC_TEMPLATE", "HEREDOC_TEMPLATE_TRIM"}
INTERPOLATION = re.compile(r"\$\{([^{}]*)\}")


@dataclass(frozen=True)
class Reference:
    root: str
    steps: Tuple[Step, ...]
    line: int

    def text(self) -> str:
        return self.root + "".join(f".{s}" if s is not None else "[i]" for s in self.steps)


@dataclass
class Attribute:
    name: str
    line: int
    references: List[Reference]


@dataclass
class Block:
    kind: str
    labels: List[str]
    file: Path
    line: int
    attributes: List[Attribute] = field(default_factory=list)
    blocks: List[Block] = field(default_factory=list)

    def attribute(self, name: str) -> Optional[Attribute]:
        return next((a for a in self.attributes if a.name == name), None)

    def references(self) -> List[Reference]:
        """Every reference in this block's arguments and nested blocks."""
        found = [r for a in self.attributes for r in a.references]
        return found + [r for b in self.blocks for r in b.references()]


class HclSyntaxError(ValueError):
    def __init__(self, file: Path, line: int, detail: str) -> None:
        super().__init__(f"{file}:{line}: HCL syntax error: {detail}")
        self.file, self.line, self.detail = file, line, detail


def read_module(folder: Path) -> List[Block]:
    """The top-level blocks of every *.tf file in `folder`, in file order."""
    blocks: List[Block] = []
    for path in sorted(folder.glob("*.tf")):
        try:
            tree = hcl2.parses_to_tree(path.read_text())
        except LarkError as error:
            raise HclSyntaxError(path, getattr(error, "line", 0) or 0, str(error).splitlines()[0]) from error
        blocks += [_block(item, path) for item in _body_items(tree.children[0]) if item.data == "block"]
    return blocks


def _body_items(body: Tree) -> List[Tree]:
    return [item for item in body.children if isinstance(item, Tree) and item.data in ("attribute", "block")]


def _name(node: Tree) -> str:
    """The text of an identifier, keyword or literal_value node."""
    return str(node.children[0])


def _label(node: Tree) -> str:
    if node.data == "string":
        return "".join(str(tok) for part in node.children if isinstance(part, Tree) for tok in part.children)
    return _name(node)


def _block(tree: Tree, file: Path) -> Block:
    head = [k for k in tree.children if isinstance(k, Tree) and k.data != "new_line_or_comment"]
    body = head.pop()  # the last child tree is the body
    block = Block(_name(head[0]), [_label(k) for k in head[1:]], file, tree.meta.line)
    for item in _body_items(body):
        if item.data == "block":
            block.blocks.append(_block(item, file))
        else:
            references: List[Reference] = []
            _scan(item.children[-1], references)
            block.attributes.append(Attribute(_name(item.children[0]), item.meta.line, references))
    return block


def _scan(node: object, out: List[Reference]) -> None:
    """Collect the references in an expression (templates and heredocs included)."""
    if isinstance(node, Token):
        if node.type in HEREDOCS:
            _scan_heredoc(node, out)
        return
    assert isinstance(node, Tree)
    if node.data in CHAINS:
        root, steps, nested = _flatten(node)
        if root is not None:
            out.append(Reference(root, tuple(steps), node.meta.line))
        for inner in nested:
            _scan(inner, out)
        return
    # A function's name is not a reference: f(a.b) scans only the arguments.
    for child in node.children[1:] if node.data == "function_call" else node.children:
        _scan(child, out)


def _scan_heredoc(token: Token, out: List[Reference]) -> None:
    # Heredocs reach the tree as one token: parse each ${...} on its own.
    for match in INTERPOLATION.finditer(token.value):
        found: List[Reference] = []
        try:
            _scan(hcl2.parses_to_tree(f"x = {match.group(1)}\n"), found)
        except LarkError:
            continue  # not a plain expression (e.g. a directive); Terraform reports those itself
        line = (token.line or 0) + token.value.count("\n", 0, match.start())
        out.extend(replace(r, line=line) for r in found)


def _flatten(node: Tree) -> Tuple[Optional[str], List[Step], List[Tree]]:
    """(root name or None, steps, sub-expressions to scan) of a traversal such as a.b[0].c."""
    steps: List[Step] = []
    nested: List[Tree] = []
    while True:
        if node.data == "expr_term" and len(node.children) == 1 and isinstance(node.children[0], Tree):
            node = node.children[0]
        elif node.data == "identifier":
            return _name(node), steps, nested
        elif node.data in CHAINS:
            steps[:0] = _steps(node.children[1], nested)
            node = node.children[0]
        else:  # (expr).x, f(x).y, [..][0]: no named root, but the inner expression may hold references
            nested.append(node)
            return None, steps, nested


def _steps(op: Tree, nested: List[Tree]) -> List[Step]:
    if op.data == "get_attr":
        return [_name(op.children[-1])]
    if op.data == "braces_index":
        nested.append(op)
        return [None]
    if op.data in ("attr_splat", "full_splat"):
        return [None] + [s for sub in op.children if isinstance(sub, Tree) for s in _steps(sub, nested)]
    return [None]  # short_index: a.0
