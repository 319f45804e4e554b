"""Evaluation: ranks on the saved pools, OURS's weight search, the identity classifier.

``ranking`` turns similarities into ranks and metrics (SPEC 5); ``scoring`` scores a
trained network through its method's similarity; ``python -m
crossmod.evaluation.combine`` grid-searches OURS's weights (Eq. 4) and
``crossmod.evaluation.identity`` runs the identity SVMs (SPEC 6).
"""
