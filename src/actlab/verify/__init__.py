"""``actlab verify``: each claim of the chapter as a small experiment on the lab, with a verdict.

Modules, one concern each: :mod:`~actlab.verify.claims` (the claims table),
:mod:`~actlab.verify.data` (the data sets), :mod:`~actlab.verify.probes` (measurements of a trained
model beyond the lab's monitors), :mod:`~actlab.verify.experiments` (per claim: the runs and what
is read from them), :mod:`~actlab.verify.rules` (pure decision rules), :mod:`~actlab.verify.figures`
and :mod:`~actlab.verify.report` (the verdict report), :mod:`~actlab.verify.run` (the driver).
Layering: verify imports lab, never the reverse; the CLI imports verify.
"""
