"""The training core both jobs run on: the epoch loop with resume and mid-epoch start, checkpoints, summary rows
(``loop``), the step loop with progress lines and recovery checkpoints over a job's named sums (``steps``), hooks
run at fixed points of either job (``hooks``), the LR-schedule protocol (``schedule``), meters (``progress``) and
the fields every training session has (``session``). The search (``lib.search``) and retraining (``lib.retrain``)
are its two clients."""
