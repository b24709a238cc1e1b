#!/usr/bin/env python3
"""Writes `src/twofold/_generated.py`, the Python shape of twofold's API, from its one source.

Read, never restated:
- `wit/types.wit` and `wit/storage.wit`: every record, enum and variant, field order, types and
  documentation;
- `wit/engine.wit`: each operation's request and answer types;
- `proto/src/ops.rs` (`for_each_op!`): each operation's JSON name, which is the Python method;
- `proto/src/error.rs` (`codes!`): error names, C numbers and descriptions;
- `proto/src/*.rs` serde attributes: which members are embedded JSON (`json::text`), which have
  a default, which are secret (`redacting_debug!`), the tag of each tagged variant;
- `include/twofold.h`: the library version and the host table version the bindings speak.

Usage: `python3 tools/generate.py` rewrites the file; `--check` exits 1 when it is stale (a test
runs that). Standard library only, so it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGE_ROOT = HERE.parent
REPO = PACKAGE_ROOT.parent.parent
OUTPUT = PACKAGE_ROOT / "src" / "twofold" / "_generated.py"


class SourceError(Exception):
    """The sources do not have the shape this generator reads: fix the generator, loudly."""


# ------------------------------------------------------------------------------------ WIT


@dataclass
class WitType:
    kind: str  # string bool u32 u64 list option named
    inner: WitType | None = None
    name: str = ""


@dataclass
class Field:
    name: str
    type: WitType
    doc: list[str]


@dataclass
class Item:
    kind: str  # record enum variant
    name: str
    doc: list[str]
    interface: str
    fields: list[Field] = field(default_factory=list)
    cases: list[tuple[str, WitType | None, list[str]]] = field(default_factory=list)


@dataclass
class Method:
    name: str
    request: str
    answer: str
    doc: list[str]


def parse_type(text: str) -> WitType:
    text = text.strip()
    for wrapper in ("list", "option"):
        if text.startswith(wrapper + "<") and text.endswith(">"):
            return WitType(wrapper, parse_type(text[len(wrapper) + 1 : -1]))
    if text in ("string", "bool", "u32", "u64"):
        return WitType(text)
    if re.fullmatch(r"[a-z][a-z0-9-]*", text):
        return WitType("named", name=text)
    raise SourceError(f"WIT type not understood: {text!r}")


def parse_wit(path: Path) -> tuple[list[Item], list[Method]]:
    items: list[Item] = []
    methods: list[Method] = []
    doc: list[str] = []
    interface = ""
    current: Item | None = None
    in_use = False
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if in_use:
            in_use = not line.endswith("};")
            continue
        if not line:
            continue
        if line.startswith("///"):
            doc.append(line[3:].strip())
            continue
        m = re.fullmatch(r"interface ([a-z-]+) \{", line)
        if m:
            interface, doc = m.group(1), []
            continue
        m = re.fullmatch(r"(record|enum|variant) ([a-z0-9-]+) \{", line)
        if m:
            current = Item(m.group(1), m.group(2), doc, interface)
            items.append(current)
            doc = []
            continue
        if line.startswith("use "):
            in_use = not line.endswith("};")
            doc = []
            continue
        if line == "}":
            current, doc = None, []
            continue
        if current is not None:
            if current.kind == "record":
                m = re.fullmatch(r"([a-z0-9-]+): (.+),", line)
                if not m:
                    raise SourceError(f"{path.name}: record field not understood: {line!r}")
                current.fields.append(Field(m.group(1), parse_type(m.group(2)), doc))
            elif current.kind == "enum":
                m = re.fullmatch(r"([a-z0-9-]+),", line)
                if not m:
                    raise SourceError(f"{path.name}: enum case not understood: {line!r}")
                current.cases.append((m.group(1), None, doc))
            else:
                m = re.fullmatch(r"([a-z0-9-]+)(?:\((.+)\))?,", line)
                if not m:
                    raise SourceError(f"{path.name}: variant case not understood: {line!r}")
                payload = parse_type(m.group(2)) if m.group(2) else None
                current.cases.append((m.group(1), payload, doc))
            doc = []
            continue
        m = re.fullmatch(
            r"([a-z-]+): func\(ctx: context, req: ([a-z-]+)\) -> result<([a-z-]+), engine-error>;",
            line,
        )
        if m:
            methods.append(Method(m.group(1), m.group(2), m.group(3), doc))
        doc = []
    return items, methods


# ------------------------------------------------------------------------------------ proto


@dataclass
class Op:
    variant: str
    json_name: str
    wit_name: str
    request: str
    answer: str


@dataclass
class Code:
    variant: str
    number: int
    name: str
    wit_name: str
    doc: str


@dataclass
class Serde:
    json_text: set[tuple[str, str]] = field(default_factory=set)  # (struct, field)
    defaulted: set[tuple[str, str]] = field(default_factory=set)
    secret: set[tuple[str, str]] = field(default_factory=set)
    tags: dict[str, str] = field(default_factory=dict)  # enum -> tag member
    structs: set[str] = field(default_factory=set)


def parse_ops(text: str) -> list[Op]:
    pattern = re.compile(
        r"(\w+), (\w+),\s*\"(\w+)\",\s*\"([\w-]+)\",\s*\$crate::(\w+) => \$crate::(\w+);"
    )
    ops = [
        Op(m.group(1), m.group(3), m.group(4), m.group(5), m.group(6))
        for m in pattern.finditer(text)
    ]
    if not ops:
        raise SourceError("proto/src/ops.rs: no operation found in for_each_op!")
    return ops


def parse_codes(text: str) -> list[Code]:
    pattern = re.compile(
        r"((?:[ \t]*///[^\n]*\n)+)[ \t]*(\w+) = (\d+), \"(\w+)\", \"([\w-]+)\";"
    )
    codes = []
    for m in pattern.finditer(text):
        doc = " ".join(line.strip()[3:].strip() for line in m.group(1).strip().splitlines())
        codes.append(Code(m.group(2), int(m.group(3)), m.group(4), m.group(5), doc))
    if not codes:
        raise SourceError("proto/src/error.rs: no code found in codes!")
    return codes


def parse_serde(texts: list[str]) -> Serde:
    serde = Serde()
    for text in texts:
        for m in re.finditer(r"pub struct (\w+) \{(.*?)\n\}", text, re.S):
            struct, body = m.group(1), m.group(2)
            serde.structs.add(struct)
            last = 0
            for f in re.finditer(r"pub (\w+):", body):
                attrs = body[last : f.start()]
                last = f.end()
                name = f.group(1)
                if "json::text" in attrs:
                    serde.json_text.add((struct, name))
                if re.search(r"#\[serde\(\s*[^\]]*\bdefault\b", attrs, re.S):
                    serde.defaulted.add((struct, name))
        for m in re.finditer(r"redacting_debug!\((\w+) \{[^}]*\} secret \{([^}]*)\}\);", text, re.S):
            for name in re.findall(r"\w+", m.group(2)):
                serde.secret.add((m.group(1), name))
        # The attribute, then other attributes (cfg_attr blocks span lines), then the enum.
        for m in re.finditer(r"#\[serde\(tag = \"(\w+)\"[^\]]*\)\](.*?)pub enum (\w+)", text, re.S):
            serde.tags[m.group(3)] = m.group(1)
    return serde


def parse_header(text: str) -> tuple[str, int]:
    version = re.search(r'#define TWOFOLD_VERSION_STRING "([^"]+)"', text)
    host = re.search(r"#define TWOFOLD_HOST_VERSION (\d+)", text)
    if not version or not host:
        raise SourceError("include/twofold.h: version macros not found")
    return version.group(1), int(host.group(1))


# ------------------------------------------------------------------------------------ output


def camel(kebab: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in kebab.split("-"))


def snake(kebab: str) -> str:
    return kebab.replace("-", "_")


def upper(kebab: str) -> str:
    return kebab.replace("-", "_").upper()


class Writer:
    def __init__(self, items: list[Item], serde: Serde) -> None:
        self.items = {item.name: item for item in items}
        self.serde = serde
        self.out: list[str] = []

    def emit(self, line: str = "") -> None:
        self.out.append(line)

    def docstring(self, doc: list[str], indent: str) -> None:
        if not doc:
            return
        text = [line.replace("\\", "\\\\").replace('"""', '\\"\\"\\"') for line in doc]
        if len(text) == 1:
            self.emit(f'{indent}"""{text[0]}"""')
            return
        self.emit(f'{indent}"""{text[0]}')
        for line in text[1:]:
            self.emit(f"{indent}{line}" if line else "")
        self.emit(f'{indent}"""')

    def is_option_variant(self, item: Item) -> bool:
        """A variant of one bare case and one with a payload reads as `Optional[payload]`."""
        return (
            item.kind == "variant"
            and len(item.cases) == 2
            and item.cases[0][1] is None
            and item.cases[1][1] is not None
            and item.cases[1][1].kind != "named"
        )

    def py_type(self, t: WitType, json_text: bool = False) -> str:
        if json_text:
            return "JsonObject"
        if t.kind == "string":
            return "str"
        if t.kind == "bool":
            return "bool"
        if t.kind in ("u32", "u64"):
            return "int"
        assert t.inner is not None or t.kind == "named"
        if t.kind == "list":
            assert t.inner is not None
            return f"list[{self.py_type(t.inner)}]"
        if t.kind == "option":
            assert t.inner is not None
            return f"Optional[{self.py_type(t.inner)}]"
        item = self.items.get(t.name)
        if item is None:
            raise SourceError(f"WIT type {t.name!r} is not defined")
        if self.is_option_variant(item):
            payload = item.cases[1][1]
            assert payload is not None
            return f"Optional[{self.py_type(payload)}]"
        return camel(t.name)

    def from_json(self, t: WitType, expr: str, json_text: bool) -> str:
        """An expression that reads `expr` (a JSON value) as type `t`."""
        if json_text:
            return f"_json_object({expr})"
        if t.kind in ("string", "bool", "u32", "u64"):
            return expr
        if t.kind == "list":
            assert t.inner is not None
            inner = self.from_json(t.inner, "x", False)
            return expr if inner == "x" else f"[{inner} for x in {expr}]"
        if t.kind == "option":
            assert t.inner is not None
            inner = self.from_json(t.inner, "v", False)
            return expr if inner == "v" else f"_opt({expr}, lambda v: {inner})"
        item = self.items[t.name]
        if item.kind == "record":
            return f"{camel(t.name)}.from_json({expr})"
        if item.kind == "enum":
            return f"{camel(t.name)}({expr})"
        if self.is_option_variant(item):
            return expr
        return f"{snake(t.name)}_from_json({expr})"

    def to_json(self, t: WitType, expr: str) -> str:
        if t.kind in ("string", "bool", "u32", "u64"):
            return expr
        if t.kind == "list":
            assert t.inner is not None
            inner = self.to_json(t.inner, "x")
            return f"list({expr})" if inner == "x" else f"[{inner} for x in {expr}]"
        if t.kind == "option":
            assert t.inner is not None
            return self.to_json(t.inner, expr)
        item = self.items[t.name]
        if item.kind == "record":
            return f"{expr}.to_json()"
        if item.kind == "enum":
            return f"{expr}.value"
        return expr

    def default_of(self, struct: str, f: Field) -> str | None:
        """The Python default of a member a caller may leave out (None: required)."""
        if f.type.kind == "option":
            return "None"
        if f.type.kind == "list":
            return "field(default_factory=list)"
        if (struct, snake(f.name)) in self.serde.defaulted:
            return {"string": '""', "bool": "False", "u32": "0", "u64": "0"}.get(f.type.kind)
        return None

    def record(self, item: Item) -> None:
        name = camel(item.name)
        if name not in self.serde.structs:
            raise SourceError(f"WIT record {item.name} has no Rust struct {name} in proto/src")
        self.emit()
        self.emit()
        self.emit("@dataclass(frozen=True, slots=True, kw_only=True)")
        self.emit(f"class {name}:")
        self.docstring(item.doc + ["", f"WIT record `{item.name}`."], "    ")
        for f in item.fields:
            attr = snake(f.name)
            json_text = (name, attr) in self.serde.json_text
            secret = (name, attr) in self.serde.secret
            annotation = self.py_type(f.type, json_text)
            default = self.default_of(name, f)
            for line in f.doc:
                self.emit(f"    #: {line}".rstrip())
            if secret:
                args = ["repr=False"]
                if default is not None:
                    if default.startswith("field("):
                        args.insert(0, "default_factory=list")
                    else:
                        args.insert(0, f"default={default}")
                self.emit(f"    {attr}: {annotation} = field({', '.join(args)})")
            elif default is not None:
                self.emit(f"    {attr}: {annotation} = {default}")
            else:
                self.emit(f"    {attr}: {annotation}")
        # from_json
        self.emit()
        self.emit("    @classmethod")
        self.emit(f"    def from_json(cls, o: JsonObject) -> {name}:")
        self.emit('        """Reads the serde JSON form (an object with snake_case members)."""')
        self.emit("        return cls(")
        for f in item.fields:
            attr = snake(f.name)
            json_text = (name, attr) in self.serde.json_text
            optional = self.default_of(name, f) is not None
            source = f'o.get("{attr}")' if f.type.kind == "option" else f'o["{attr}"]'
            if optional and f.type.kind != "option":
                default = self.default_of(name, f)
                fallback = "[]" if default and default.startswith("field(") else default
                source = f'o.get("{attr}", {fallback})'
            self.emit(f"            {attr}={self.from_json(f.type, source, json_text)},")
        self.emit("        )")
        # to_json
        self.emit()
        self.emit("    def to_json(self) -> JsonObject:")
        self.emit('        """The serde JSON form; optional members that are None are left out."""')
        required = [f for f in item.fields if f.type.kind != "option"]
        optional_fields = [f for f in item.fields if f.type.kind == "option"]
        if required:
            self.emit("        o: JsonObject = {")
            for f in required:
                attr = snake(f.name)
                self.emit(f'            "{attr}": {self.to_json(f.type, "self." + attr)},')
            self.emit("        }")
        else:
            self.emit("        o: JsonObject = {}")
        for f in optional_fields:
            attr = snake(f.name)
            self.emit(f"        if self.{attr} is not None:")
            self.emit(f'            o["{attr}"] = {self.to_json(f.type, "self." + attr)}')
        self.emit("        return o")

    def enum(self, item: Item) -> None:
        self.emit()
        self.emit()
        self.emit(f"class {camel(item.name)}(str, enum.Enum):")
        self.docstring(item.doc + ["", f"WIT enum `{item.name}`; values are the JSON names."], "    ")
        for case, _, doc in item.cases:
            self.emit()
            self.emit(f'    {upper(case)} = "{snake(case)}"')
            self.docstring(doc, "    ")

    def variant(self, item: Item) -> None:
        if self.is_option_variant(item):
            return  # read as Optional[payload] where used
        name = camel(item.name)
        tag = self.serde.tags.get(name)
        if tag is None:
            raise SourceError(f"variant {item.name}: no #[serde(tag = ...)] on enum {name}")
        for case, payload, _ in item.cases:
            if payload is None or payload.kind != "named" or payload.name != case:
                raise SourceError(
                    f"variant {item.name}: case {case} must carry the record of the same name"
                )
        members = ", ".join(camel(case) for case, _, _ in item.cases)
        self.emit()
        self.emit()
        self.emit(f"{name} = Union[{members}]")
        self.docstring(
            item.doc + ["", f"WIT variant `{item.name}`: in JSON, the case's record plus `\"{tag}\"`."],
            "",
        )
        self.emit()
        self.emit()
        self.emit(f"def {snake(item.name)}_from_json(o: JsonObject) -> {name}:")
        self.emit(f'    """Reads a `{item.name}` by its `"{tag}"` member."""')
        self.emit(f'    tag = o.get("{tag}")')
        for case, _, _ in item.cases:
            self.emit(f'    if tag == "{snake(case)}":')
            self.emit(f"        return {camel(case)}.from_json(o)")
        self.emit(f'    raise ValueError(f"{item.name}: unknown {tag} {{tag!r}}")')
        self.emit()
        self.emit()
        self.emit(f"def {snake(item.name)}_to_json(value: {name}) -> JsonObject:")
        self.emit(f'    """Writes a `{item.name}`: its case\'s record plus the `"{tag}"` member."""')
        for case, _, _ in item.cases:
            self.emit(f"    if isinstance(value, {camel(case)}):")
            self.emit(f'        return {{"{tag}": "{snake(case)}", **value.to_json()}}')
        self.emit(f'    raise TypeError(f"not a {item.name}: {{type(value).__name__}}")')


HEADER = '''\
"""The shape of twofold's API in Python: records, enums, error classes and operations.

GENERATED by hosts/python/tools/generate.py from wit/*.wit, proto/src (operation and error
tables, serde attributes) and include/twofold.h. Do not edit: change the sources and run
`python3 hosts/python/tools/generate.py` (a test fails when this file is stale).
"""

# ruff: noqa
from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Optional, TypeVar, Union

from ._errors import TwofoldError

#: A JSON object as the json module reads it (WebAuthn options, credentials, audit details).
JsonObject = dict[str, Any]

_T = TypeVar("_T")
_U = TypeVar("_U")


def _opt(value: Optional[_T], read: Callable[[_T], _U]) -> Optional[_U]:
    return None if value is None else read(value)


def _json_object(value: Any) -> JsonObject:
    """An embedded JSON member: the object itself, or a string holding it."""
    if isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, dict):
        raise ValueError("an embedded JSON member is not an object")
    return value

'''


def generate() -> str:
    type_items, _ = parse_wit(REPO / "wit" / "types.wit")
    storage_items, _ = parse_wit(REPO / "wit" / "storage.wit")
    _, methods = parse_wit(REPO / "wit" / "engine.wit")
    package = re.search(r"package ([\w:.@-]+);", (REPO / "wit" / "types.wit").read_text())
    if not package:
        raise SourceError("wit/types.wit: no package line")
    ops = parse_ops((REPO / "proto" / "src" / "ops.rs").read_text())
    codes = parse_codes((REPO / "proto" / "src" / "error.rs").read_text())
    serde = parse_serde(
        [p.read_text() for p in sorted((REPO / "proto" / "src").glob("*.rs"))]
    )
    lib_version, host_version = parse_header((REPO / "include" / "twofold.h").read_text())

    storage_items = [i for i in storage_items if i.name != "host-error"]
    items = type_items + storage_items
    w = Writer(items, serde)
    w.out.append(HEADER.rstrip("\n"))
    w.emit()
    w.emit(f'#: The WIT package these types follow.\nWIT_PACKAGE = "{package.group(1)}"')
    w.emit(f'#: The C library version these bindings were generated for (`twofold_version()`).\nLIBRARY_VERSION = "{lib_version}"')
    w.emit(f"#: `TWOFOLD_HOST_VERSION`: the layout of `struct twofold_host` declared in _ffi.\nHOST_VERSION = {host_version}")

    # Enums first (records use them), then records in WIT order (annotations are strings).
    for item in items:
        if item.kind == "enum":
            w.enum(item)
    for item in items:
        if item.kind == "record" and item.name != "engine-error":
            w.record(item)
    for item in items:
        if item.kind == "variant":
            w.variant(item)

    # Errors: one class per code.
    wit_codes = [case for case, _, _ in w.items["error-code"].cases]
    if wit_codes != [c.wit_name for c in codes]:
        raise SourceError("error codes differ between wit/types.wit and proto/src/error.rs")
    for c in codes:
        w.emit()
        w.emit()
        w.emit(f"class {camel(c.wit_name)}Error(TwofoldError):")
        w.emit(f'    """{c.doc}"""')
        w.emit()
        w.emit(f"    code: ClassVar[ErrorCode] = ErrorCode.{upper(c.wit_name)}")
        w.emit(f"    status: ClassVar[int] = {c.number}")
    w.emit()
    w.emit()
    w.emit("#: The exception class of each error code.")
    w.emit("ERRORS: dict[ErrorCode, type[TwofoldError]] = {")
    for c in codes:
        w.emit(f"    ErrorCode.{upper(c.wit_name)}: {camel(c.wit_name)}Error,")
    w.emit("}")
    w.emit("#: The exception class of each C status (`twofold_status`).")
    w.emit("ERRORS_BY_STATUS: dict[int, type[TwofoldError]] = {c.status: c for c in ERRORS.values()}")

    # Operations: one method each, on a base class the Engine completes with `_call`.
    by_wit = {m.name: m for m in methods}
    if sorted(by_wit) != sorted(op.wit_name for op in ops):
        raise SourceError("operations differ between wit/engine.wit and proto/src/ops.rs")
    w.emit()
    w.emit()
    w.emit("class Operations:")
    w.emit('    """One method per engine operation (the table `for_each_op!`); `Engine` runs them."""')
    w.emit()
    w.emit("    def _call(self, op: str, args: JsonObject, ctx: Optional[Context]) -> JsonObject:")
    w.emit("        raise NotImplementedError")
    for op in ops:
        m = by_wit[op.wit_name]
        if camel(m.request) != op.request or camel(m.answer) != op.answer:
            raise SourceError(f"{op.json_name}: types differ between engine.wit and ops.rs")
        request = w.items[m.request]
        answer = w.items[m.answer]
        params = []
        body = []
        for f in request.fields:
            attr = snake(f.name)
            json_text = (op.request, attr) in serde.json_text
            annotation = "Union[JsonObject, str]" if json_text else w.py_type(f.type)
            default = w.default_of(op.request, f)
            if default is not None and default.startswith("field("):
                default = "()"
                annotation = annotation.replace("list[", "Sequence[", 1)
            params.append(f"{attr}: {annotation}" + (f" = {default}" if default else ""))
            body.append((attr, f))
        w.emit()
        w.emit(f"    def {op.json_name}(")
        w.emit("        self,")
        w.emit("        *,")
        for p in params:
            w.emit(f"        {p},")
        w.emit("        ctx: Optional[Context] = None,")
        ret = camel(m.answer)
        w.emit(f"    ) -> {ret}:")
        w.docstring(
            m.doc
            + ["", f"Request `{m.request}`, answer `{m.answer}` (wit/types.wit); raises a `TwofoldError`."],
            "        ",
        )
        w.emit("        args: JsonObject = {}")
        for attr, f in body:
            value = w.to_json(f.type, attr)
            if f.type.kind == "option":
                w.emit(f"        if {attr} is not None:")
                w.emit(f'            args["{attr}"] = {value}')
            else:
                w.emit(f'        args["{attr}"] = {value}')
        w.emit(f'        answer = self._call("{op.json_name}", args, ctx)')
        if answer.kind == "variant":
            w.emit(f"        return {snake(m.answer)}_from_json(answer)")
        else:
            w.emit(f"        return {ret}.from_json(answer)")
    w.emit()
    w.emit()
    w.emit("#: Every operation: (JSON name, WIT method, request record, answer type).")
    w.emit("OPERATIONS: tuple[tuple[str, str, str, str], ...] = (")
    for op in ops:
        m = by_wit[op.wit_name]
        w.emit(f'    ("{op.json_name}", "{op.wit_name}", "{m.request}", "{m.answer}"),')
    w.emit(")")
    public = sorted(
        set(re.findall(r"^(?:class |def )?([A-Za-z][A-Za-z0-9_]*)\b(?:\(|:| =)", "\n".join(w.out), re.M))
        - {"from", "import", "return", "if", "raise", "for", "tag", "o", "args", "answer"}
    )
    w.emit()
    w.emit("__all__ = [")
    for name in public:
        w.emit(f'    "{name}",')
    w.emit("]")
    text = "\n".join(w.out) + "\n"
    return text.replace("from typing import Any, Callable", "from typing import Any, Callable, Sequence", 1) if "Sequence[" in text else text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args()
    try:
        text = generate()
    except SourceError as e:
        print(f"generate.py: {e}", file=sys.stderr)
        return 2
    current = OUTPUT.read_text() if OUTPUT.exists() else ""
    if args.check:
        if current != text:
            print(
                f"{OUTPUT} is stale: run python3 hosts/python/tools/generate.py",
                file=sys.stderr,
            )
            return 1
        return 0
    if current != text:
        OUTPUT.write_text(text)
        print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
