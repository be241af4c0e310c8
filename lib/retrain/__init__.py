"""Retraining a child network (retrain.py) on the training core: set-up (``setup``), the network's training
wrappers (``wrappers``), optimizer and schedule (``optim``), the step (``step``) and the epoch client (``epoch``)."""
