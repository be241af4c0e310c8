"""How the entry scripts end: a user's mistake is one ``error:`` line, a crash points at the log,
Ctrl-C says how to resume, and the process group is always torn down."""
import contextlib

import torch.distributed as tdist

from lib.config import ConfigError
from lib.data.dataset import DataError
from lib.engine.checkpoint import CheckpointError
from lib.models.childnet import ArchError

# Errors whose message already names the problem and the fix: shown without a traceback.
USER_ERRORS = (ConfigError, ArchError, CheckpointError, DataError)


def _shutdown_process_group(ok: bool) -> None:
    if tdist.is_available() and tdist.is_initialized():
        if ok:
            tdist.barrier()  # no rank tears the group down while another still writes
        tdist.destroy_process_group()


@contextlib.contextmanager
def guarded(run, what: str, log_name: str, user_errors=()):
    """Run the body of an entry script; ``what`` names the job in messages ('the search')."""
    ok = False
    try:
        yield
        ok = True
    except USER_ERRORS + tuple(user_errors) as err:
        run.logger.error('%s', err)
        raise SystemExit(f'error: {err}') from None
    except KeyboardInterrupt:
        run.logger.warning('%s interrupted; AUTO_RESUME True continues from the last saved checkpoint', what)
        raise SystemExit(130) from None
    except Exception as err:
        run.logger.exception('%s failed', what)
        raise SystemExit(f'error: {what} failed with {type(err).__name__}: {err} '
                         f'(traceback in {run.run_dir}/{log_name})') from None
    finally:
        _shutdown_process_group(ok)
