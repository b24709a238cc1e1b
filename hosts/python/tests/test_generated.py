"""The generated API shape is fresh and agrees with the library it binds."""

from __future__ import annotations

import inspect
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import twofold
from twofold import _ffi, _generated

HERE = Path(__file__).resolve().parent
GENERATOR = HERE.parent / "tools" / "generate.py"
HEADER = HERE.parents[2] / "include" / "twofold.h"


def test_generated_file_is_fresh() -> None:
    """Fails when wit/, proto/ or include/twofold.h changed and _generated.py was not rewritten
    (`python3 hosts/python/tools/generate.py`)."""
    run = subprocess.run([sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_every_operation_is_a_method_and_every_code_a_class() -> None:
    for json_name, _wit, _req, _answer in _generated.OPERATIONS:
        method = getattr(twofold.Engine, json_name)
        assert "ctx" in inspect.signature(method).parameters
    assert set(_generated.ERRORS) == set(twofold.ErrorCode)
    for code, cls in _generated.ERRORS.items():
        assert issubclass(cls, twofold.TwofoldError) and cls.code is code


def test_error_numbers_and_names_match_the_library() -> None:
    lib = _ffi.library()
    assert lib.twofold_version().decode() == _generated.LIBRARY_VERSION
    for cls in _generated.ERRORS.values():
        assert lib.twofold_status_name(cls.status).decode() == cls.code.value


def test_ctypes_declarations_match_the_header() -> None:
    """Every function declared in _ffi exists in the header with as many parameters, and the
    structs have the header's members in order."""
    header = HEADER.read_text()
    lib = _ffi.library()
    for name in re.findall(r"\b(twofold_[a-z_]+)\(", header):
        if not hasattr(lib, name) or getattr(lib, name).argtypes is None:
            continue
        match = re.search(r"\b" + name + r"\(([^)]*)\);", header)
        assert match, name
        params = [p for p in match.group(1).split(",") if p.strip() and p.strip() != "void"]
        assert len(params) == len(getattr(lib, name).argtypes), name

    def members(struct: str) -> list[str]:
        body = re.search(r"struct " + struct + r" \{(.*?)\n\};", header, re.S)
        assert body, struct
        text = re.sub(r"/\*.*?\*/", "", body.group(1), flags=re.S)
        names = []
        for statement in text.split(";"):
            pointer = re.search(r"\(\*(\w+)\)", statement)
            last = re.findall(r"(\w+)\s*$", statement)
            if pointer or last:
                names.append(pointer.group(1) if pointer else last[0])
        return names

    assert members("twofold_write") == [f[0] for f in _ffi.WriteStruct._fields_]
    assert members("twofold_host") == [f[0] for f in _ffi.HostStruct._fields_]


def test_the_readme_quickstart_runs(tmp_path: Path) -> None:
    example = HERE.parent / "examples" / "quickstart.py"
    env = dict(os.environ, TWOFOLD_AUDIT_KEY=secrets.token_hex(32))
    for _ in range(2):  # the second run meets the existing account
        run = subprocess.run([sys.executable, str(example)], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
    assert "signed in as" in run.stdout and "wrong email or password" in run.stdout
