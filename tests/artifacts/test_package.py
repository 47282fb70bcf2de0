"""The artifacts package as a whole: nothing a user loads may run code."""

import importlib
import pkgutil

import w2s_lens.artifacts as artifacts


def test_no_pickle_primitives() -> None:
    """No module of the package offers a pickle reader or writer, or imports pickle."""
    modules = [importlib.import_module(f"w2s_lens.artifacts.{m.name}")
               for m in pkgutil.iter_modules(artifacts.__path__)]
    assert {m.__name__.rsplit(".", 1)[1] for m in modules} >= {
        "files", "json_files", "provenance", "seals", "tensors"}
    for module in modules:
        assert not [n for n in dir(module) if "pickle" in n.lower()], module.__name__
        assert "sha256_of" not in module.__all__  # its home is w2s_lens.assets
