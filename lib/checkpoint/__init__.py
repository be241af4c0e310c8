"""Everything about checkpoint files, in one package (nothing is imported here, so that the torch-only
modules stay light):

files      safe loading (weights-only, else an allowlist unpickler) and atomic saving; torch only
weights    which weights of a checkpoint (EMA or raw), whether they fit a model, unwrap_model
format     what a checkpoint of ours holds: released keys + training state (+ a search's state)
saver      last / best / checkpoint-<epoch> / recovery files of a run folder
resume     which checkpoint a run continues from, and whether its config matches
restore    putting a checkpoint back (weights, optimizer, schedule, RNG, a search's board and MMN)
"""
