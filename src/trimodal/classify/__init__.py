"""Image + free-text classification from a user's CSV (``trimodal classify``).

Data flow: :mod:`table` (CSV -> checked rows, decoded pixels, split) -> :mod:`labels` (classes,
targets, class weights) -> :mod:`model` (the family's image and text encoders, a fusion module,
a transformer, a linear head) -> :mod:`train` (balanced loss, best validation epoch,
temperature scaling) -> :mod:`run` (the fused model and its single-modality baselines, saved as
one folder) -> :mod:`metrics`, :mod:`explain`, :mod:`report`. :mod:`examples` writes two example
tables. Not a medical device: see docs/applications.md.
"""
