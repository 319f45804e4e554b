"""Training: a split's arrays, the batch sampler, the device, the loop and its entry point.

``python -m crossmod.training.train`` trains one network on one user split: the loop
(``loop.py``) asks the network's method (``crossmod.methods``) for its model and loss,
evaluates on the validation pools (``crossmod.evaluation.scoring``) and keeps the best
snapshot.
"""
