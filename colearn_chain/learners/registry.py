"""The learner plug-in point: a factory reference resolves to a function that builds one learner.

A **factory** is any callable ``FACTORY(index, n_learners, seed, options) -> MachineLearningInterface``:
``index`` is the learner's place in the contract's list, ``n_learners`` the consortium's size,
``seed`` the consortium's seed and ``options`` a dict of JSON values. Given the same four arguments
it must build the same learner in any process: an agent and the in-memory reference build their
learners with the same call, and the run checks they decide alike.

A **reference** names a factory: ``MODULE:FACTORY`` (``examples.centroid:make_learner``), or a kind
registered in the entry-point group :data:`GROUP` (``numpy``, ``toy``, ``sklearn-sgd``, ``sklearn-mlp``,
``keras-cnn``, or one another package declares in its ``pyproject.toml``). ``MODULE`` is imported with
the current directory on the path, as ``python -m`` would (the agents ``run`` starts share its directory)::

    [project.entry-points."colearn_chain.learners"]
    mymodel = "mypackage.learner:make_learner"

A factory may declare its options and their defaults with :func:`learner_factory`; the recorded spec
is then complete, and an unknown option is refused before anything is deployed.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import entry_points
from typing import Any, Final, Protocol, TypeVar

from ..mli import MachineLearningInterface

#: The entry-point group that names learner factories.
GROUP: Final[str] = "colearn_chain.learners"

#: The kinds this package ships, as its pyproject.toml registers them in :data:`GROUP` (a test keeps
#: the two equal). Used when the installed metadata lacks them: a source checkout on ``PYTHONPATH``,
#: or an editable install made before the group existed.
BUNDLED: Final[Mapping[str, str]] = {
    "numpy": "colearn_chain.learners:numpy_learner",
    "toy": "colearn_chain.learners:toy_learner",
    "sklearn-sgd": "colearn_chain.learners.estimators:sgd_learner",
    "sklearn-mlp": "colearn_chain.learners.estimators:mlp_learner",
    "keras-cnn": "colearn_chain.learners.keras:cnn_learner",
}

#: Keys of a learner spec that are not factory options.
RESERVED: Final[tuple[str, ...]] = ("kind", "n_learners", "seed")

_DEFAULTS_ATTRIBUTE: Final[str] = "learner_defaults"


class LearnerFactory(Protocol):
    """``FACTORY(index, n_learners, seed, options) -> MachineLearningInterface``."""

    def __call__(
        self, index: int, n_learners: int, seed: int, options: dict[str, Any]
    ) -> MachineLearningInterface: ...


F = TypeVar("F", bound=Callable[..., Any])


def learner_factory(defaults: Mapping[str, Any]) -> Callable[[F], F]:
    """Declare a factory's options and their defaults (JSON values): ``@learner_factory({"lr": 0.1})``.

    Optional. With it, a spec naming the factory is completed with the defaults and an unknown option is
    an error; without it, the options are passed on as given.
    """
    reserved = sorted(set(defaults) & set(RESERVED))
    if reserved:
        raise ValueError(f"{', '.join(reserved)} are not options: every factory gets them as arguments")
    frozen = dict(defaults)
    json.dumps(frozen)  # the spec is recorded as JSON

    def declare(factory: F) -> F:
        setattr(factory, _DEFAULTS_ATTRIBUTE, frozen)  # a function attribute, which mypy cannot type
        return factory

    return declare


def declared_options(factory: object) -> dict[str, Any] | None:
    """The options ``factory`` declared with :func:`learner_factory` and their defaults; None if it did not."""
    defaults = getattr(factory, _DEFAULTS_ATTRIBUTE, None)
    return dict(defaults) if isinstance(defaults, Mapping) else None


def available_kinds() -> list[str]:
    """Every named kind: the bundled ones and those installed packages register in :data:`GROUP`."""
    return sorted(set(BUNDLED) | {ep.name for ep in entry_points(group=GROUP)})


def resolve_factory(reference: str) -> LearnerFactory:
    """The factory ``reference`` names (``MODULE:FACTORY`` or a registered kind); ValueError saying why not."""
    if not isinstance(reference, str) or not reference.strip():
        raise ValueError(f"a learner is named by MODULE:FACTORY or a registered kind, got {reference!r}")
    if ":" in reference:
        target = reference
    else:
        found = [ep for ep in entry_points(group=GROUP) if ep.name == reference]
        if found:
            target = found[0].value
        elif reference in BUNDLED:
            target = BUNDLED[reference]
        else:
            renamed = " (the numpy models' kind was called 'sklearn' before)" if reference == "sklearn" else ""
            raise ValueError(
                f"unknown learner kind {reference!r}{renamed}; choose one of {', '.join(available_kinds())} "
                "or name a factory as MODULE:FACTORY"
            )
    module_name, _, attribute = target.partition(":")
    if ":" in reference and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # MODULE may be the user's own file here, as with `python -m`
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"cannot import learner module {module_name!r} (from {reference!r}): {error}") from error
    factory: object = module
    for part in attribute.split("."):
        if not part or not hasattr(factory, part):
            raise ValueError(f"module {module_name!r} has no {attribute!r} (from learner {reference!r})")
        factory = getattr(factory, part)
    if not callable(factory):
        raise ValueError(f"learner factory {target!r} is a {type(factory).__name__}, not a callable")
    return factory  # a callable; make_learner checks what it returns


def parse_learner_option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` -> (key, value): the value parsed as JSON when it parses (5, 0.1, true, [1,2]), else the string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ValueError(f"a learner option is KEY=VALUE, got {text!r}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key, value


def parse_learner_options(items: Iterable[str]) -> dict[str, Any]:
    """Repeated ``KEY=VALUE`` options into a dict; a later one wins."""
    return dict(parse_learner_option(item) for item in items)


__all__ = [
    "BUNDLED",
    "GROUP",
    "RESERVED",
    "LearnerFactory",
    "available_kinds",
    "declared_options",
    "learner_factory",
    "parse_learner_option",
    "parse_learner_options",
    "resolve_factory",
]
