"""The one way recbole-ext replaces a RecBole function: :func:`wrap` (or :func:`replace` for a value
that is not a wrapper), which refuses to replace anything twice and records every replacement in
:data:`REPLACED` (read by :func:`recbole_ext.hooks.replacements` and the manifest test)."""

import functools

# (namespace object, attribute name) -> the hook module that replaced it, in the order of replacement
REPLACED = {}
HOOK_ATTRIBUTE = "__recbole_ext_hook__"


def _original(owner, name):
    # a class's own attribute where it has one (what it inherits otherwise: the replacement is then
    # the class's own, and its base classes keep theirs)
    value = vars(owner).get(name, getattr(owner, name)) if isinstance(owner, type) else getattr(owner, name)
    if getattr(value, HOOK_ATTRIBUTE, None) is not None or (owner, name) in REPLACED:
        raise RuntimeError(f"{_qualified(owner)}.{name} is already replaced by {REPLACED.get((owner, name))}")
    return value


def wrap(owner, name, *, also_in=()):
    """Decorator: ``owner.name`` becomes a function calling ``hook(recbole_function, *args, **kwargs)``.

    ``also_in`` lists other namespaces that imported the same function by name (RecBole's
    ``from recbole.utils import get_model``): each gets the same wrapper."""

    def decorate(hook):
        original = _original(owner, name)

        @functools.wraps(original)
        def replacement(*args, **kwargs):
            return hook(original, *args, **kwargs)

        _install(owner, name, replacement, hook.__module__, also_in)
        return hook

    return decorate


def replace(owner, name, value, hook_module, *, also_in=()):
    """Set ``owner.name`` to ``value`` (not a wrapper: a function written anew, a module stand-in);
    the RecBole original stays reachable as ``value.__wrapped__`` where ``value`` takes attributes."""
    original = _original(owner, name)
    try:
        value.__wrapped__ = original
    except (AttributeError, TypeError):
        pass
    _install(owner, name, value, hook_module, also_in)
    return value


def _install(owner, name, value, hook_module, also_in):
    try:
        setattr(value, HOOK_ATTRIBUTE, hook_module)
    except (AttributeError, TypeError):
        pass
    for namespace in (owner, *also_in):
        if namespace is not owner:
            _original(namespace, name)  # the same guard for every namespace
        setattr(namespace, name, value)
        REPLACED[(namespace, name)] = hook_module


def _qualified(owner):
    if isinstance(owner, type):
        return f"{owner.__module__}.{owner.__qualname__}"
    return getattr(owner, "__name__", repr(owner))


def qualified_name(owner, name):
    """``module.Class.attribute`` or ``module.attribute``: how the manifest names a replacement."""
    return f"{_qualified(owner)}.{name}"
