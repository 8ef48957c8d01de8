"""Replaying the inbound history through the current translators into a shadow, side by side
with the live projection: `carelog replay`, `replay diff|promote|drop`.

Here in infra/ rather than processors/: it runs the processors' pipeline and folds with the
store's applier, and processors and projections never import each other.
"""
