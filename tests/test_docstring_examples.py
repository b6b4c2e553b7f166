"""The usage examples in the losses' docstrings run and print what they say (doctest), so they cannot rot.

Every Keras loss of the distillation (hetcomp_tf/distill/losses/) and wo_kd's BPRLoss (hetcomp_tf/data/sampling.py)
carries a `>>>` example on small literal tensors, as TF-Ranking's losses do; every other `>>>` example in those
modules runs too. The examples print `round(float(loss), 4)` (or a list of such values), never a tensor or a raw
float: float32 results can differ in their last bits between CPUs (instruction sets, thread counts), while a value
rounded to 4 decimals prints the same everywhere.
"""

from __future__ import annotations

import doctest
import importlib

import pytest

# module -> the loss classes whose docstring must hold an example
LOSS_MODULES = {
    "hetcomp_tf.distill.losses.listwise": ("PlackettLuceLoss", "SetwiseLoss"),
    "hetcomp_tf.distill.losses.hetcomp": ("OverallLoss", "FineGrainedLoss", "RRDLoss"),
    "hetcomp_tf.distill.losses.dcd": ("CorrectionLoss", "DCDLoss"),
    "hetcomp_tf.data.sampling": ("BPRLoss",),
}


def docstring_tests(module_name: str) -> list[doctest.DocTest]:
    """The module's docstring examples (its own objects', not the names it imports), each run on a copy of the
    module's globals."""
    module = importlib.import_module(module_name)
    return [test for test in doctest.DocTestFinder(exclude_empty=True).find(module) if test.examples]


@pytest.mark.parametrize("module_name", sorted(LOSS_MODULES))
def test_the_docstring_examples_print_what_they_say(module_name):
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    report: list[str] = []
    attempted = failed = 0
    for test in docstring_tests(module_name):
        result = runner.run(test, out=report.append)
        attempted, failed = attempted + result.attempted, failed + result.failed
    assert attempted > 0, f"{module_name}: no docstring example found"
    assert failed == 0, f"{module_name}: {failed} of {attempted} docstring examples failed:\n" + "".join(report)


@pytest.mark.parametrize(
    ("module_name", "name"), [(module, name) for module, names in LOSS_MODULES.items() for name in names]
)
def test_every_loss_carries_an_example(module_name, name):
    names = {test.name for test in docstring_tests(module_name)}
    assert f"{module_name}.{name}" in names, f"{module_name}.{name}: no `>>>` example in its docstring"
