"""The twofold WASI component from Python through wasmtime-py's dynamic component API, for the
benchmark: storage imports over a dict, records built from the serde JSON forms by walking
`wit/types.wit` (read with tools/generate.py's parser), so no field list is written here.

wasmtime-py 50 returns a WIT `result` tagged (`Variant('ok'|'err', x)`) only when its ok and
err payloads are different Python classes; otherwise bare. `_tagged()` (private) tells which.
A Python exception escaping an import poisons the instance, so every import catches.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Any, Optional

from wasmtime import Config as WtConfig
from wasmtime import Engine as WtEngine
from wasmtime import Store, WasiConfig
from wasmtime.component import Component, Linker, Record, ResultType, Variant

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tools"))
from generate import REPO, Item, WitType, parse_wit  # noqa: E402

from twofold import MemoryStorage, StorageConflict, Write  # noqa: E402

PACKAGE = "twofold:engine@0.2.0"
JSON_TEXT = {("second-factor-required", "options"), ("registration-started", "options"),
             ("passkey-sign-in", "credential"), ("finish-registration", "credential"),
             ("audit-event", "details")}

_ITEMS: dict[str, Item] = {}
for wit in ("types.wit", "storage.wit"):
    for item in parse_wit(REPO / "wit" / wit)[0]:
        _ITEMS[item.name] = item


def to_wit(t: WitType, value: Any, owner: str = "", member: str = "") -> Any:
    """A serde JSON value as wasmtime-py wants it for WIT type `t`."""
    if (owner, member) in JSON_TEXT:
        return value if isinstance(value, str) else json.dumps(value)
    if t.kind == "option":
        assert t.inner is not None
        return None if value is None else to_wit(t.inner, value)
    if t.kind == "list":
        assert t.inner is not None
        return [to_wit(t.inner, v) for v in value]
    if t.kind != "named":
        return value
    item = _ITEMS[t.name]
    if item.kind == "enum":
        return value.replace("_", "-")
    record = Record()
    for f in item.fields:
        setattr(record, f.name, to_wit(f.type, value.get(f.name.replace("-", "_")), item.name, f.name.replace("-", "_")))
    return record


def from_wit(value: Any) -> Any:
    """A wasmtime-py value back to its serde JSON form (roughly: enough for the benchmark)."""
    if isinstance(value, Record):
        return {k.replace("-", "_"): from_wit(v) for k, v in value.__dict__.items()}
    if isinstance(value, Variant):
        body = from_wit(value.payload) if value.payload is not None else {}
        return {"status": value.tag.replace("-", "_"), **body}
    if isinstance(value, list):
        return [from_wit(v) for v in value]
    return value


class ComponentError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class ComponentEngine:
    """One store, one instance, one engine resource, over a MemoryStorage."""

    def __init__(self, config: dict[str, Any], cache_dir: Path) -> None:
        wasm = REPO / "target" / "wasm32-wasip2" / "release" / "twofold_component.wasm"
        self.wt = WtEngine(WtConfig())
        cache_dir.mkdir(parents=True, exist_ok=True)
        cached = cache_dir / "twofold_component.cwasm-py"
        if cached.exists() and cached.stat().st_mtime > wasm.stat().st_mtime:
            self.component = Component.deserialize_file(self.wt, str(cached))
        else:
            self.component = Component.from_file(self.wt, str(wasm))
            cached.write_bytes(self.component.serialize())
        self.storage = MemoryStorage()
        self.local = threading.local()
        linker = Linker(self.wt)
        linker.add_wasip2()
        with linker.root() as root:
            with root.add_instance(f"twofold:engine/storage@{PACKAGE.split('@')[1]}") as iface:
                iface.add_func("get", self._get)
                iface.add_func("scan", self._scan)
                iface.add_func("commit", self._commit)
        self.store = Store(self.wt)
        self.store.set_wasi(WasiConfig())
        self.instance = linker.instantiate(self.store, self.component)
        engine_iface = self.instance.get_export_index(self.store, f"twofold:engine/engine@{PACKAGE.split('@')[1]}")
        self.funcs: dict[str, Any] = {}
        self.types: dict[str, Any] = {}
        self.handle = self._invoke("[constructor]engine", engine_iface, to_wit(WitType("named", name="config"), config))
        self.iface = engine_iface

    # --- imports: never raise (a raise poisons the instance) -----------------------------
    def _get(self, _store: Any, key: str) -> Any:
        try:
            found = self.storage.get(key)
        except Exception as e:  # noqa: BLE001
            return Variant("err", f"{type(e).__name__}: {e}")
        if found is None:
            return Variant("ok", None)
        record = Record()
        record.value = found.value
        record.version = found.version
        return Variant("ok", record)

    def _scan(self, _store: Any, prefix: str, after: Optional[str], limit: int) -> Any:
        try:
            entries = self.storage.scan(prefix, after, limit)
        except Exception as e:  # noqa: BLE001
            return f"{type(e).__name__}: {e}"  # untagged result: the bare error
        out = []
        for e in entries:
            versioned = Record()
            versioned.value = e.value.value
            versioned.version = e.value.version
            entry = Record()
            entry.key = e.key
            entry.value = versioned
            out.append(entry)
        return out

    def _commit(self, _store: Any, writes: list[Any]) -> Any:
        try:
            self.storage.commit(
                [Write(key=w.key, value=w.value, expect=getattr(w, "expect")) for w in writes]
            )
        except StorageConflict:
            return Variant("err", None)
        except Exception as e:  # noqa: BLE001
            return Variant("err", f"{type(e).__name__}: {e}")
        return Variant("ok", None)

    # --- exports ---------------------------------------------------------------------------
    def _invoke(self, name: str, iface: Any, *args: Any) -> Any:
        f = self.funcs.get(name)
        if f is None:
            index = self.instance.get_export_index(self.store, name, iface)
            f = self.funcs[name] = self.instance.get_func(self.store, index)
            self.types[name] = f.type(self.store).result
        out = f(self.store, *args)
        result_type = self.types[name]
        if isinstance(result_type, ResultType) and not result_type._tagged():
            classes: set[Any] = set()
            if result_type.err is not None:
                result_type.err.add_classes(classes)
            out = Variant("err", out) if isinstance(out, tuple(classes)) else Variant("ok", out)
        if isinstance(out, Variant) and out.tag == "err":
            e = out.payload
            raise ComponentError(getattr(e, "code").replace("-", "_"), getattr(e, "message"))
        return out.payload if isinstance(out, Variant) and out.tag == "ok" else out

    def call(self, method: str, request_type: str, args: dict[str, Any], ctx: Optional[dict[str, Any]] = None) -> Any:
        ctx_record = to_wit(WitType("named", name="context"), dict({"ip": "", "user_agent": "", "client_id": ""}, **(ctx or {})))
        req = to_wit(WitType("named", name=request_type), args)
        return from_wit(self._invoke(f"[method]engine.{method}", self.iface, self.handle, ctx_record, req))
