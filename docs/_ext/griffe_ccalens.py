"""Griffe extension for the API reference of ``make docs`` (loaded by mkdocstrings-python, see mkdocs.yml).

griffe reads the sources without importing them (torch is never imported by the build). Three things of
ccalens that static analysis cannot see are made explicit here, mirroring the code at run time:

* the names offered lazily by a module ``__getattr__`` (``ccalens``: the conv and extraction names;
  ``ccalens.extract``: the torch, model-comparison and Dask names, listed in ``ccalens/extract/_exports.py``)
  become aliases of the objects ``__getattr__`` returns, and the ``__all__`` lists built from those tuples
  become plain lists of names (griffe's warnings about the tuples in ``__all__`` are silenced: they are
  exactly what this extension resolves);
  (a name that is also a submodule, ``ccalens.extract``, stays the submodule);
* ``ccalens.cca`` is the function ``ccalens.core.measures.cca`` (griffe would take the submodule
  ``ccalens.core.cca`` of the same name);
* the docstrings' Sphinx roles (``:func:`x```, ``:class:`~a.b.C```, ...) become code spans.
"""

from __future__ import annotations

import ast
import logging
import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:func|class|mod|meth|attr|data|exc|obj):`([^`]+)`")

# Lazily offered names: (module, the tuples of names, where __getattr__ takes each tuple's names from).
_LAZY = {
    "ccalens": {"_CONV": "ccalens.conv", "_EXTRACT": "ccalens.extract"},
    "ccalens.extract": {
        "HOOKS": "ccalens.extract.hooks",
        "COMPARE": "ccalens.extract.compare",
        "DASK": "ccalens.extract.distributed",
    },
}
_TUPLES_FROM = {"ccalens.extract": "ccalens.extract._exports", "ccalens.extract.distributed": "ccalens.extract._exports"}


class _ResolvedExports(logging.Filter):
    """Drop griffe's "Unsupported item in ccalens...__all__" warnings: on_package resolves those items."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("Unsupported item in ccalens." in message and "__all__" in message)


logging.getLogger("mkdocs.plugins.griffe").addFilter(_ResolvedExports())


def _role_to_code(match: re.Match[str]) -> str:
    target = match.group(1).strip()
    if "<" in target and target.endswith(">"):  # :func:`title <target>`
        target = target[: target.index("<")].strip()
    elif target.startswith("~"):
        target = target[1:].rsplit(".", 1)[-1]
    return f"`{target}`"


def _names(module: Any, attribute: str) -> tuple[str, ...]:
    return tuple(ast.literal_eval(str(module.members[attribute].value)))


class CcalensAPI(griffe.Extension):
    """Lazy exports as aliases, ``ccalens.cca`` as the function, Sphinx roles as code spans."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        if pkg.path != "ccalens":
            return
        modules = {"ccalens": pkg, "ccalens.extract": pkg["extract"]}
        for path, groups in _LAZY.items():
            module = modules[path]
            source = pkg["extract._exports"] if path in _TUPLES_FROM else module
            lazy: list[str] = []
            for attribute, target in groups.items():
                for name in _names(source, attribute):
                    if name in module.members and module.members[name].is_module:
                        continue  # ccalens.extract: the subpackage (the function is ccalens.extract.extract)
                    module.set_member(name, griffe.Alias(name, f"{target}.{name}", parent=module))
                    lazy.append(name)
            exported = [e for e in module.exports or () if isinstance(e, str)]
            module.exports = [*exported, *(n for n in lazy if n not in exported)]
        pkg.set_member("cca", griffe.Alias("cca", "ccalens.core.measures.cca", parent=pkg))
        distributed = pkg["extract.distributed"]
        distributed.exports = [
            *_names(pkg["extract._exports"], "DASK"),
            *(e for e in distributed.exports or () if isinstance(e, str)),
        ]

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None and ":`" in obj.docstring.value:
            obj.docstring.value = _ROLE.sub(_role_to_code, obj.docstring.value)
