"""Griffe extension for the API reference of ``make docs`` (loaded by mkdocstrings-python, see mkdocs.yml).

griffe reads the sources without importing them (torch is never imported by the build). Three things of
ccalens that static analysis cannot see are made explicit here, mirroring the code at run time:

* the names offered lazily by a module ``__getattr__`` become aliases of the objects ``__getattr__`` returns:
  ``ccalens``'s ``_CONV`` tuple (from ``ccalens.conv``) and ``_EXTRACT`` tuple (from ``ccalens.extract``), and
  ``ccalens.extract``'s ``_LAZY`` dict (name -> submodule of ``ccalens.extract``); the ``__all__`` lists built
  from them become plain lists of names (griffe's warnings about the starred items in ``__all__`` are silenced:
  they are exactly what this extension resolves). A name that is also a submodule (``ccalens.extract``) stays
  the submodule;
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


class _ResolvedExports(logging.Filter):
    """Drop griffe's "Unsupported item in ccalens...__all__" warnings: on_package resolves those items."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("Unsupported item in ccalens" in message and "__all__" in message)


logging.getLogger("mkdocs.plugins.griffe").addFilter(_ResolvedExports())


def _role_to_code(match: re.Match[str]) -> str:
    target = match.group(1).strip()
    if "<" in target and target.endswith(">"):  # :func:`title <target>`
        target = target[: target.index("<")].strip()
    elif target.startswith("~"):
        target = target[1:].rsplit(".", 1)[-1]
    return f"`{target}`"


def _literal(module: griffe.Module, attribute: str) -> Any:
    """The value of a module-level tuple or dict literal, read from the source."""
    return ast.literal_eval(str(module.members[attribute].value))


def _add_lazy(module: griffe.Module, targets: dict[str, str]) -> None:
    """Alias ``module.<name>`` to ``targets[name]`` and list the names in ``module.exports``."""
    lazy: list[str] = []
    for name, target in targets.items():
        if name in module.members and module.members[name].is_module:
            continue  # ccalens.extract: the subpackage (the function is ccalens.extract.extract)
        module.set_member(name, griffe.Alias(name, target, parent=module))
        lazy.append(name)
    exported = [e for e in module.exports or () if isinstance(e, str)]
    module.exports = [*exported, *(n for n in lazy if n not in exported)]


class CcalensAPI(griffe.Extension):
    """Lazy exports as aliases, ``ccalens.cca`` as the function, Sphinx roles as code spans."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        if pkg.path != "ccalens":
            return
        extract = pkg["extract"]
        _add_lazy(extract, {name: f"ccalens.extract.{sub}.{name}" for name, sub in _literal(extract, "_LAZY").items()})
        top = {name: f"ccalens.conv.{name}" for name in _literal(pkg, "_CONV")}
        top |= {name: f"ccalens.extract.{name}" for name in _literal(pkg, "_EXTRACT")}
        _add_lazy(pkg, top)
        pkg.set_member("cca", griffe.Alias("cca", "ccalens.core.measures.cca", parent=pkg))

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None and ":`" in obj.docstring.value:
            obj.docstring.value = _ROLE.sub(_role_to_code, obj.docstring.value)
