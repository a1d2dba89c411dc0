"""The hooks layer: every RecBole attribute ``import recbole_ext`` changes is named in
``recbole_ext.hooks.MANIFEST``, replaced in the hooks subpackage, wrapping RecBole's own once."""

import importlib
import json
import subprocess
import sys
import textwrap
import types

import pytest

import recbole_ext
from recbole_ext import hooks
from recbole_ext.hooks.replace import HOOK_ATTRIBUTE, REPLACED, qualified_name, wrap

# What a fresh interpreter sees change in RecBole's modules and classes when recbole_ext is imported:
# the RecBole modules the plugin can touch are imported first, their attributes (and the attributes
# of the classes they define) recorded by identity, then recbole_ext is imported (twice, the second
# time reloaded) and the records compared.
_SNAPSHOT_SCRIPT = textwrap.dedent("""
    import importlib, inspect, json, sys, types
    import recbole.quick_start, recbole.trainer, recbole.evaluator, recbole.data, recbole.data.dataset
    import recbole.model.sequential_recommender, recbole.model.general_recommender

    def snapshot():
        seen = {}
        for name, module in list(sys.modules.items()):
            if not (name == "recbole" or name.startswith("recbole.")) or not isinstance(module, types.ModuleType):
                continue
            if getattr(module, "__recbole_ext_plugin__", False):
                continue  # a plugin model's module, a registration
            for attribute, value in list(vars(module).items()):
                if isinstance(value, types.ModuleType):
                    continue  # a submodule imported later: not a change of behaviour
                seen[f"{name}.{attribute}"] = value  # the object itself: an id could be reused
                if inspect.isclass(value) and value.__module__ == name:
                    for member, member_value in vars(value).items():
                        seen[f"{name}.{attribute}.{member}"] = member_value
        return seen

    before = snapshot()
    import recbole_ext
    after = snapshot()
    importlib.reload(recbole_ext)
    again = snapshot()
    print(json.dumps({
        "changed": sorted(k for k in before if k in after and after[k] is not before[k]),
        "added": sorted(k for k in after if k not in before),
        "removed": sorted(k for k in before if k not in after),
        "changed_by_second_import": sorted(k for k in after if again.get(k) is not after[k]),
        "models": recbole_ext.list_models(),
    }))
""")


@pytest.fixture(scope="module")
def import_changes():
    done = subprocess.run([sys.executable, "-c", _SNAPSHOT_SCRIPT], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _manifest():
    return {name for names in hooks.MANIFEST.values() for name in names}


def _registrations(models):
    """The dataset and trainer classes registered for ``models`` (in this process, as in the fresh one)."""
    import recbole.data.dataset
    import recbole.trainer

    return {f"{module.__name__}.{model}{kind}" for model in models
            for module, kind in ((recbole.data.dataset, "Dataset"), (recbole.trainer, "Trainer"))
            if hasattr(module, f"{model}{kind}")}


def test_every_attribute_the_import_changes_is_in_the_manifest(import_changes):
    changed = set(import_changes["changed"])
    added = set(import_changes["added"]) - _registrations(import_changes["models"])
    assert not import_changes["removed"]
    # an inherited method replaced on a subclass (TrainDataLoader.__iter__) is an added class attribute
    assert changed | added == _manifest()


def test_the_import_registers_only_the_plugin_models_dataset_classes(import_changes):
    registrations = set(import_changes["added"]) - _manifest()
    assert import_changes["models"] == ["DwellGRU4Rec", "RNNCCE", "RatingMF", "RatingMLP", "RatingNNMF"]
    assert registrations == _registrations(import_changes["models"])
    assert "recbole.data.dataset.RNNCCEDataset" in registrations


def test_importing_twice_changes_nothing(import_changes):
    assert import_changes["changed_by_second_import"] == []
    before = dict(REPLACED)
    hooks.install()
    importlib.reload(recbole_ext)
    assert REPLACED == before


def test_each_replacement_is_made_by_its_installer_and_wraps_recbole_once():
    made = hooks.replacements()
    assert made == {name: f"recbole_ext.hooks.{installer}"
                    for installer, names in hooks.MANIFEST.items() for name in names}
    for (owner, name), _ in REPLACED.items():
        value = getattr(owner, name)
        assert getattr(value, HOOK_ATTRIBUTE).startswith("recbole_ext.hooks."), qualified_name(owner, name)
        original = value.__wrapped__
        assert getattr(original, HOOK_ATTRIBUTE, None) is None, f"{qualified_name(owner, name)} wraps a wrapper"
        inner = getattr(original, "__wrapped__", None)
        # RecBole's own decorators count as RecBole's (Trainer.evaluate is torch.no_grad's wrapper)
        assert inner is None or (getattr(inner, HOOK_ATTRIBUTE, None) is None and inner.__module__.startswith("recbole.")
                                 and inner.__qualname__ == original.__qualname__), f"{qualified_name(owner, name)} wraps twice"
        module = original.__name__ if isinstance(original, types.ModuleType) else original.__module__
        assert module.split(".")[0] in ("recbole", "pandas", "torch", "ray"), (qualified_name(owner, name), module)


def test_a_second_replacement_of_the_same_function_is_refused():
    from recbole.config.configurator import Config

    with pytest.raises(RuntimeError, match=r"Config.__init__ is already replaced by recbole_ext.hooks.config"):
        wrap(Config, "__init__")(lambda recbole_init, self: None)


def test_replaced_functions_are_defined_in_the_hooks_subpackage_only():
    for installer in hooks.INSTALLERS:
        module = importlib.import_module(f"recbole_ext.hooks.{installer}")
        assert callable(module.install)
    for name, installer in hooks.replacements().items():
        assert installer.startswith("recbole_ext.hooks."), name
