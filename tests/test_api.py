"""The public API: the table of docs/api.md lists exactly each public module's ``__all__``,
and every listed name exists."""

import importlib
import os
import re
from tests.support import ROOT



def api_table() -> dict[str, list[str]]:
    with open(os.path.join(ROOT, "docs", "api.md")) as f:
        text = f.read()
    rows = re.findall(r"^\| `(jaxgan[a-z._]*)` \| [^|]* \| (.*) \|$", text, re.M)
    return {module: re.findall(r"`([A-Za-z_0-9]+)`", names) for module, names in rows}


def test_api_table_is_each_modules_all():
    table = api_table()
    assert {"jaxgan", "jaxgan.data", "jaxgan.trainer", "jaxgan.eval"} <= set(table)
    for module, names in table.items():
        loaded = importlib.import_module(module)
        assert names == list(loaded.__all__), module
        for name in names:
            assert hasattr(loaded, name), f"{module}.{name}"
