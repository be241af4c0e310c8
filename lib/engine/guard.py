"""How the entry scripts end: a user's mistake is one ``error:`` line and exit status 2, a crash points at
the log (status 1), Ctrl-C says how to resume (130), and the process group is always torn down."""
import contextlib
import sys

import torch.distributed as tdist

from lib.config import ConfigError
from lib.data.dataset import DataError
from lib.engine.checkpoint import CheckpointError
from lib.engine.run_folder import RunFolderError
from lib.models.childnet import ArchError

# Errors whose message already names the problem and the fix: shown without a traceback.
# FloatingPointError: the divergence checks (lib.engine.finite.DivergedError and the search loop's).
USER_ERRORS = (ConfigError, ArchError, CheckpointError, DataError, RunFolderError, FloatingPointError)
USER_ERROR_STATUS = 2


class UserErrorExit(SystemExit):
    """Exit status 2 after the one ``error: ...`` line on stderr; ``str()`` is that line."""

    def __init__(self, line: str):
        super().__init__(USER_ERROR_STATUS)
        self.line = line

    def __str__(self) -> str:
        return self.line


def user_error_exit(err) -> UserErrorExit:
    """Print ``error: <err>`` on stderr and return the SystemExit to raise (status 2)."""
    line = f'error: {err}'
    print(line, file=sys.stderr, flush=True)
    return UserErrorExit(line)


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
        raise user_error_exit(err) from None
    except KeyboardInterrupt:
        run.logger.warning('%s interrupted; AUTO_RESUME True continues from the last saved checkpoint', what)
        raise SystemExit(130) from None
    except Exception as err:
        run.logger.exception('%s failed', what)
        raise SystemExit(f'error: {what} failed with {type(err).__name__}: {err} '
                         f'(traceback in {run.run_dir}/{log_name})') from None
    finally:
        _shutdown_process_group(ok)
