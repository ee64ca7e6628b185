"""The public API: the table of docs/api.md lists exactly each public module's ``__all__``,
every listed name exists, and no other module of the package declares an ``__all__``."""

import importlib
import os
import pkgutil
import re
import types

import jaxgan
from tests.support import ROOT


def api_doc() -> str:
    with open(os.path.join(ROOT, "docs", "api.md")) as f:
        return f.read()


def api_table() -> dict[str, list[str]]:
    rows = re.findall(r"^\| `(jaxgan[a-z._]*)` \| [^|]* \| (.*) \|$", api_doc(), re.M)
    return {module: re.findall(r"`([A-Za-z_0-9]+)`", names) for module, names in rows}


def test_api_table_is_each_modules_all():
    table = api_table()
    assert {"jaxgan", "jaxgan.data", "jaxgan.trainer", "jaxgan.eval"} <= set(table)
    for module, names in table.items():
        loaded = importlib.import_module(module)
        assert names == list(loaded.__all__), module
        for name in names:
            assert hasattr(loaded, name), f"{module}.{name}"


def test_only_the_tables_modules_declare_an_all():
    declaring = {"jaxgan"}
    for info in pkgutil.walk_packages(jaxgan.__path__, "jaxgan."):
        if hasattr(importlib.import_module(info.name), "__all__"):
            declaring.add(info.name)
    assert declaring == set(api_table())


def test_the_stated_count_is_the_tables():
    names = [
        (module, name) for module, row in api_table().items() for name in row
        if not isinstance(getattr(importlib.import_module(module), name), types.ModuleType)
    ]
    stated = re.search(r"^(\d+) functions and classes", api_doc(), re.M)
    assert stated and int(stated.group(1)) == len(names) == len(set(names))
