"""Stage 4, learning (torch): score network, regression targets, training, priors, samplers.

Importing this package imports torch; ``import symscore`` does not (its names load lazily).
"""
