"""The layers of the code, lowest first: a module imports modules of its own layer or of lower ones, never of a
higher one (tests/test_layers.py checks every import, lazy ones inside functions included).

Each layer: its name, the modules it holds (a package stands for all its modules; ``lib`` is only lib/__init__.py),
and why it sits where it does.
A new module or package gets a place here; docs/development.md describes the order.
"""

LAYERS = (
    ('base', ('lib', 'lib.errors', 'lib.layers'),
     'CreamError, the base of every error a user can fix; imports nothing of ours'),
    ('files', ('lib.fileio',), 'atomic writes need only the errors'),
    ('comm', ('lib.comm',), 'rank queries and collectives wrap torch.distributed alone'),
    ('checked input', ('lib.checked_io',), 'reading named files with checks builds on errors and fileio'),
    ('config', ('lib.config',),
     'the defaults tree and its checks: every layer above reads a config'),
    ('engine', ('lib.engine',), "a run's runtime (process group, run folder, logs, evaluation loop) reads the config"),
    ('data', ('lib.data',), 'datasets and loaders need no model, no checkpoint and no run'),
    ('checkpoint', ('lib.checkpoint',), 'checkpoint files are torch state: no network class, only engine checks'),
    ('models', ('lib.models',), "the networks; the zoo loads released weights through lib/checkpoint"),
    ('latency', ('lib.latency',), "the efficiency predictor: tables of the networks' measured op times"),
    ('train', ('lib.train',), 'the training core: loop, steps, checkpoints; knows neither job'),
    ('retrain', ('lib.retrain',), 'retraining a child network, a client of lib/train (the search does not use it)'),
    ('search', ('lib.search',), 'the supernet search, a client of lib/train; its budgets read latency tables'),
    ('experiments', ('lib.experiments', 'lib.bench'),
     'NAS tooling over searches and retrainings: ground truth, rankings, reports, latency tables against networks; '
     "the benchmarks' phases, which run both jobs' steps"),
    ('entry points', ('tools', 'train', 'retrain', 'test'), 'command lines over the package'),
)


def layer_of(module: str):
    """The index in LAYERS of the layer holding ``module`` (a dotted name), or None when no layer holds it."""
    best, best_length = None, -1
    for index, (_, members, _) in enumerate(LAYERS):
        for member in members:
            holds = module == member or (member != 'lib' and module.startswith(member + '.'))
            if holds and len(member) > best_length:
                best, best_length = index, len(member)
    return best
