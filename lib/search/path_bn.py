"""A context that puts a path's BN statistics back: what the per-path BN re-estimation
(``lib.search.validate.recalibrated_bn``) and the held-out board admission (``lib.search.admission``) change and must
undo. The layers come from ``SuperNet.path_bn_layers`` (one list per path, cached on the supernet)."""
import contextlib


@contextlib.contextmanager
def restored_bn(layers):
    """Inside the block ``layers`` may change their running statistics and momentum; afterwards they hold the
    values they had before (the supernet's shared training statistics)."""
    saved = [({k: v.clone() for k, v in m.named_buffers(recurse=False)}, m.momentum) for m in layers]
    try:
        yield
    finally:
        for m, (buffers, momentum) in zip(layers, saved):
            for name, value in buffers.items():
                getattr(m, name).copy_(value)
            m.momentum = momentum
