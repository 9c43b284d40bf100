"""A private module namespace for each implementation loaded from a file.

``--impl A/adapter.py:grads`` may ``import rnn_layers`` from its own folder, and
``B/adapter.py`` its own ``rnn_layers``; Python caches modules by name in ``sys.modules``.

Note [Private namespaces]
-------------------------
Each file-based implementation owns the modules it loads from its folder: they live in
its :class:`ModuleNamespace`, not in ``sys.modules``, and are swapped in (its folder first
on ``sys.path``, same-named modules from elsewhere hidden) only while its code runs, at
import and at every call, so two implementations never run each other's code. Bytecode
is not written meanwhile: checking an implementation writes nothing into its folder.
"""

from __future__ import annotations

import functools
import sys
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["ModuleNamespace"]


class ModuleNamespace:
    """The modules an implementation loaded from its own ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder.resolve()
        self.modules: dict[str, types.ModuleType] = {}

    def _owns(self, module: types.ModuleType | None) -> bool:
        file = getattr(module, "__file__", None)
        return file is not None and Path(file).resolve().is_relative_to(self.folder)

    def _local_names(self) -> set[str]:
        """Top-level module names the folder provides (``x.py`` and packages ``x/``)."""
        names = {p.stem for p in self.folder.glob("*.py")}
        return names | {p.name for p in self.folder.iterdir() if (p / "__init__.py").is_file()}

    @contextmanager
    def active(self) -> Iterator[None]:
        """Run with this namespace's modules in ``sys.modules`` and its folder first on ``sys.path``."""
        local = self._local_names()
        hidden = {
            name: module
            for name, module in sys.modules.items()
            if name.split(".")[0] in local and name not in self.modules and not self._owns(module)
        }
        for name in hidden:
            del sys.modules[name]
        sys.modules.update(self.modules)
        before = set(sys.modules)
        folder = str(self.folder)
        sys.path.insert(0, folder)
        no_bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True
        try:
            yield
        finally:
            sys.dont_write_bytecode = no_bytecode
            sys.path.remove(folder)
            # What this code loaded from its folder is its own; what was imported before
            # (e.g. by the user's own test module) stays where it was.
            for name, module in list(sys.modules.items()):
                if name in self.modules or (name not in before and self._owns(module)):
                    self.modules[name] = sys.modules.pop(name)
            sys.modules.update(hidden)

    def wrap(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """``func`` running inside :meth:`active`; its attributes (``per_step``) are kept."""

        @functools.wraps(func)
        def inside(*args: Any, **kwargs: Any) -> Any:
            with self.active():
                return func(*args, **kwargs)

        return inside
