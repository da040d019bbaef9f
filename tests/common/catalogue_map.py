"""Reading who sends and who receives what from the code, and comparing it with the catalogue's
``PRODUCERS`` and ``CONSUMERS`` (``test_catalogue_map.py`` runs it).

What the code does is read from its source with ``ast``:

- **receives**: ``<bus>.consume(X, ...)`` and ``<bus>.serve("name", ...)`` (the query ``rpc.name``; the
  receiver's name ends with ``bus``: ``bus``, ``ctx.bus``), also when ``X`` or the name come from a ``for``
  loop over a module-level table or over ``consumed_by(...)``/``served_by(...)``. A ``consume`` or ``serve``
  call whose argument cannot be read that way is itself a failure: the map must be readable.
- **sends**: a catalogue class called, ``X(...)`` (then emitted, published or asked). A class counts when
  it is imported from ``berth_common.catalogue`` or named through it (``catalogue.X``).
- **handles**: any other mention of ``X`` but in an annotation, an ``isinstance`` check or a read of its
  metadata (``X.TYPE``): ``X.model_validate(...)``, ``X`` handed to a helper (``build(X, values)`` in a
  sender, ``_parse(X, data)`` in a receiver, ``query=X``) or put in a table. The party must be named on
  one side of ``X``, and it counts as the evidence for whichever side names it.

Code in ``libs/common`` (the bus, the runtime) runs in every service: what it sends or receives counts for
each of them (``evt.bus.dead_lettered``, ``rpc.<service>.health``).
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from berth_common.catalogue import PARTIES, REGISTRY, SERVICES, consumed_by, served_by

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT / "libs" / "common" / "src" / "berth_common"
# Messages the catalogue lists ahead of their producer: type -> the party that will send it.
NOT_SENT_YET: dict[str, str] = {}
LOOKUPS = {"consumed_by": consumed_by, "served_by": served_by}


@dataclass(frozen=True)
class Entry:
    """What the map needs of a catalogue entry (the tests build wrong tables from these)."""

    name: str
    type: str
    kind: str
    producers: tuple[str, ...]
    consumers: tuple[str, ...]


def entries(registry: Mapping[str, type] = REGISTRY) -> dict[str, Entry]:
    return {t: Entry(m.__name__, t, m.KIND, tuple(m.PRODUCERS), tuple(m.CONSUMERS)) for t, m in registry.items()}


@dataclass
class Uses:
    """What a party's code sends and receives (message types), and the calls that could not be read."""

    sends: set[str] = field(default_factory=set)
    receives: set[str] = field(default_factory=set)
    handles: set[str] = field(default_factory=set)
    unreadable: list[str] = field(default_factory=list)

    def add(self, other: Uses) -> None:
        self.sends |= other.sends
        self.receives |= other.receives
        self.handles |= other.handles
        self.unreadable += other.unreadable


# --- reading the code -------------------------------------------------------------------------------------


class _Module:
    """One source file: its catalogue names, its module-level tables and the parents of its nodes."""

    def __init__(self, source: str, where: str, table: Mapping[str, Entry]) -> None:
        self.tree = ast.parse(source)
        self.where = where
        self.by_name = {e.name: e.type for e in table.values()}
        self.messages: dict[str, str] = {}  # local name of a class imported from the catalogue -> type
        self.catalogues: set[str] = set()  # local names of the catalogue module itself
        for node in ast.walk(self.tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("berth_common.catalogue"):
                for alias in node.names:
                    if alias.name in self.by_name:
                        self.messages[alias.asname or alias.name] = self.by_name[alias.name]
            elif isinstance(node, ast.ImportFrom) and node.module == "berth_common":
                self.catalogues |= {a.asname or a.name for a in node.names if a.name == "catalogue"}
            elif isinstance(node, ast.Import):
                self.catalogues |= {a.asname for a in node.names if a.name == "berth_common.catalogue" and a.asname}
        self.globals: dict[str, ast.expr] = {}
        for stmt in self.tree.body:
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
                self.globals[stmt.targets[0].id] = stmt.value
            elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
                self.globals[stmt.target.id] = stmt.value
        self.parent: dict[ast.AST, ast.AST] = {}
        for node in ast.walk(self.tree):
            for child in ast.iter_child_nodes(node):
                self.parent[child] = node

    def message(self, expr: ast.expr) -> str | None:
        """The type of the catalogue class ``expr`` names: ``X`` (as imported) or ``catalogue.X``."""
        if isinstance(expr, ast.Name):
            return self.messages.get(expr.id)
        if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name) and expr.value.id in self.catalogues:
            return self.by_name.get(expr.attr)
        return None

    def at(self, node: ast.AST) -> str:
        return f"{self.where}:{getattr(node, 'lineno', '?')}"

    # Values an expression can take: message types ("type:<t>") or strings.
    def values(self, expr: ast.expr, scope: ast.AST) -> list[str] | None:
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            return [expr.value]
        if (type_ := self.message(expr)) is not None:
            return [f"type:{type_}"]
        if isinstance(expr, ast.Name):
            return self._loop_values(expr.id, scope)
        if isinstance(expr, ast.Attribute) and expr.attr == "TYPE":
            return self.values(expr.value, scope)
        if (
            isinstance(expr, ast.Call)
            and isinstance(expr.func, ast.Attribute)
            and expr.func.attr == "removeprefix"
            and len(expr.args) == 1
            and isinstance(expr.args[0], ast.Constant)
        ):
            inner = self.values(expr.func.value, scope)
            prefix = expr.args[0].value
            return None if inner is None else [v if v.startswith("type:") else v.removeprefix(prefix) for v in inner]
        return None

    def _loop_values(self, name: str, scope: ast.AST) -> list[str] | None:
        """The values of ``name`` when an enclosing ``for`` binds it (alone or in a tuple)."""
        node: ast.AST | None = scope
        while node is not None:
            if isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
                position = _position(node.target, name)
                if position is not None:
                    items = self._iterated(node.iter)
                    if items is None:
                        return None
                    found: list[str] = []
                    for item in items:
                        if isinstance(item, str):
                            found.append(item)
                            continue
                        if position >= 0:
                            if not isinstance(item, (ast.Tuple, ast.List)) or position >= len(item.elts):
                                return None
                            item = item.elts[position]
                        more = self.values(item, node)
                        if more is None:
                            return None
                        found += more
                    return found
            node = self.parent.get(node)
        return None

    def _iterated(self, expr: ast.expr) -> list[ast.expr | str] | None:
        """The items a ``for`` goes through: a literal table (here or module-level), or a catalogue lookup."""
        if isinstance(expr, ast.Call) and not expr.keywords:
            func = expr.func
            lookup = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if lookup in LOOKUPS and all(isinstance(a, ast.Constant) for a in expr.args):
                args = [a.value for a in expr.args if isinstance(a, ast.Constant)]
                return [f"type:{model.TYPE}" for model in LOOKUPS[lookup](*args)]
            if isinstance(func, ast.Attribute) and func.attr in ("items", "keys") and not expr.args:
                table = self._iterated(func.value)
                if table is None or not isinstance(self._literal(func.value), ast.Dict):
                    return None
                literal = self._literal(func.value)
                assert isinstance(literal, ast.Dict)
                if func.attr == "keys":
                    return [k for k in literal.keys if k is not None]
                return [ast.Tuple(elts=[k, v]) for k, v in zip(literal.keys, literal.values, strict=True) if k]
        literal = self._literal(expr)
        if isinstance(literal, (ast.Tuple, ast.List, ast.Set)):
            return list(literal.elts)
        if isinstance(literal, ast.Dict):
            return [k for k in literal.keys if k is not None]
        return None

    def _literal(self, expr: ast.expr) -> ast.expr | None:
        if isinstance(expr, ast.Name):
            return self.globals.get(expr.id)
        return expr if isinstance(expr, (ast.Tuple, ast.List, ast.Set, ast.Dict)) else None


def _position(target: ast.expr, name: str) -> int | None:
    """-1 when the loop binds ``name`` alone, its index when it binds a tuple containing it, else None."""
    if isinstance(target, ast.Name):
        return -1 if target.id == name else None
    if isinstance(target, ast.Tuple):
        for i, elt in enumerate(target.elts):
            if isinstance(elt, ast.Name) and elt.id == name:
                return i
    return None


def _is_bus(expr: ast.expr) -> bool:
    """``bus``, ``ctx.bus``, ``self.bus``: a ``serve`` on anything else is an HTTP server's."""
    name = expr.id if isinstance(expr, ast.Name) else expr.attr if isinstance(expr, ast.Attribute) else ""
    return name.endswith("bus")


METADATA = frozenset({"TYPE", "KIND", "SCHEMA_VERSION", "PRODUCERS", "CONSUMERS", "REPLY"})


def _not_mentions(tree: ast.AST) -> set[ast.AST]:
    """Nodes where a catalogue class is named without handling its messages: annotations, ``isinstance``
    and ``issubclass`` checks, reads of its metadata (``X.TYPE``, ``X.CONSUMERS``)."""
    skip: set[ast.AST] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            for arg in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg):
                if arg is not None and arg.annotation is not None:
                    skip.update(ast.walk(arg.annotation))
            if node.returns is not None:
                skip.update(ast.walk(node.returns))
        elif isinstance(node, ast.AnnAssign):
            skip.update(ast.walk(node.annotation))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("isinstance", "issubclass")
        ):
            for arg in node.args:
                skip.update(ast.walk(arg))
        elif isinstance(node, ast.Attribute) and node.attr in METADATA:
            skip.add(node.value)
    return skip


def read_source(source: str, where: str, table: Mapping[str, Entry]) -> Uses:
    """What one module sends, receives and handles."""
    module = _Module(source, where, table)
    types = {e.type for e in table.values()}
    uses = Uses()
    skip = _not_mentions(module.tree)
    for node in ast.walk(module.tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        method = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if (type_ := module.message(func)) is not None:
            uses.sends.add(type_)
            skip.add(func)
            continue
        if not isinstance(func, ast.Attribute) or not (
            method == "consume" or (method == "serve" and _is_bus(func.value))
        ):
            continue
        if not node.args:
            uses.unreadable.append(f"{module.at(node)}: {method}() without a positional argument")
            continue
        skip.update(ast.walk(node.args[0]))
        found = module.values(node.args[0], node)
        if found is None:
            uses.unreadable.append(f"{module.at(node)}: cannot tell what this {method}() receives")
            continue
        for value in found:
            type_ = value.removeprefix("type:") if value.startswith("type:") else None
            if type_ is None:
                type_ = value if method == "consume" else f"rpc.{value}"
            if type_ not in types:
                uses.unreadable.append(f"{module.at(node)}: {method}({value!r}) is no catalogue message")
            else:
                uses.receives.add(type_)
    # Any other mention: handed to a helper (``build(X, values)``, ``query=X``), parsed
    # (``X.model_validate(data)``), or put in a table.
    for node in ast.walk(module.tree):
        if node not in skip and isinstance(node, (ast.Name, ast.Attribute)):
            if (type_ := module.message(node)) is not None:
                uses.handles.add(type_)
    return uses


def read_tree(files: Iterable[Path], table: Mapping[str, Entry]) -> Uses:
    names = tuple(sorted((e.name, e.type, e.kind) for e in table.values()))
    uses = Uses()
    for path in sorted(files):
        uses.add(_read_file(path, names))
    return uses


@functools.cache
def _read_file(path: Path, names: tuple[tuple[str, str, str], ...]) -> Uses:
    """What one file sends and receives; it depends on the catalogue's names only, not on its tables."""
    table = {type_: Entry(name, type_, kind, (), ()) for name, type_, kind in names}
    return read_source(path.read_text(), str(path.relative_to(ROOT)), table)


def usage(table: Mapping[str, Entry]) -> dict[str, Uses]:
    """Per party whose code is here (the services and the cli): what it sends and receives."""
    shared = read_tree((p for p in SHARED.rglob("*.py") if "catalogue" not in p.relative_to(SHARED).parts), table)
    found: dict[str, Uses] = {}
    for service in SERVICES:
        uses = read_tree((ROOT / "services" / service / "src").rglob("*.py"), table)
        uses.add(replace(shared, unreadable=[]))
        found[service] = uses
    found["cli"] = read_tree((ROOT / "cli" / "src").rglob("*.py"), table)
    found["cli"].unreadable += shared.unreadable
    return found


# --- comparing --------------------------------------------------------------------------------------------


def disagreements(
    table: Mapping[str, Entry], found: Mapping[str, Uses], not_sent_yet: Mapping[str, str] = NOT_SENT_YET
) -> list[str]:
    problems: list[str] = []
    for party, uses in sorted(found.items()):
        problems += [f"{party}: {u}" for u in uses.unreadable]
    for type_, e in sorted(table.items()):
        for party in (*e.producers, *e.consumers):
            if party not in PARTIES:
                problems.append(f"{type_}: {party!r} is no party (known: {', '.join(PARTIES)})")
        for party, uses in sorted(found.items()):
            sends, receives, handles = type_ in uses.sends, type_ in uses.receives, type_ in uses.handles
            named_sender, named_receiver = party in e.producers, party in e.consumers
            if sends and not named_sender:
                problems.append(f"{party} sends {type_}, but it is not among its PRODUCERS {e.producers}")
            if receives and not named_receiver:
                problems.append(f"{party} receives {type_}, but it is not among its CONSUMERS {e.consumers}")
            if handles and not (named_sender or named_receiver):
                problems.append(f"{party} handles {type_}, but it is neither among its PRODUCERS nor CONSUMERS")
            if named_sender and not (sends or handles) and not_sent_yet.get(type_) != party:
                problems.append(f"{type_} names {party} among its PRODUCERS, but {party} never sends it")
            if (sends or handles) and not_sent_yet.get(type_) == party:
                problems.append(f"{party} sends {type_} now: take it out of NOT_SENT_YET")
            if named_receiver and not (receives or handles):
                problems.append(f"{type_} names {party} among its CONSUMERS, but {party} never receives it")
    return problems
