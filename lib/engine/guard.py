"""How the entry scripts end.

Inside ``main()``, ``logged_run`` writes how the run ended to its log (a user's mistake as one line, a
crash with its traceback, Ctrl-C or SIGTERM with how to resume, a collective failing because another rank's
process is gone as one line, ``PeerLost``), always tears the process group down and then lets the run folder's
lock go; the exception itself goes on to the caller unchanged (but for ``PeerLost``), so a test calling
``main()`` sees the real error. Only the command line turns it into an exit status: ``exit_on_error`` prints a
``CreamError`` as one ``error:`` line (status 2), ``PeerLost`` as one (status 1: torchrun restarts on it),
Ctrl-C is status 130 and a stop on SIGTERM (``lib.engine.stop``) 143; anything else keeps its traceback. The
tools use ``exit_on_error`` too (with the checks of ``lib.checked_io``: a damaged input file, an unwritable
output, a number out of range).
"""
import contextlib
import os
import re
import sys
from typing import Any, Callable, List, Optional

from lib import comm
from lib.engine.stop import STOPPED_STATUS, RunStopped, end_the_torchrun_job
from lib.errors import CreamError

USER_ERROR_STATUS = 2  # as argparse exits on a bad command line
PEER_LOST_STATUS = 1  # a failure, not the user's: torchrun restarts the job on it (--max-restarts)
INTERRUPTED_STATUS = 130  # the shell's status for Ctrl-C


@contextlib.contextmanager
def logged_run(run, what: str, log_name: str):
    """The body of an entry script's ``main()``; ``what`` names the job in messages ('the search')."""
    ok = False
    try:
        yield
        ok = True
    except CreamError as err:
        run.logger.error('%s', err)
        raise
    except KeyboardInterrupt:
        run.logger.warning('%s interrupted; AUTO_RESUME True continues from the last saved checkpoint', what)
        raise
    except RunStopped as stop:
        run.logger.warning('%s', stop)
        raise
    except Exception as err:
        lost = comm.lost_peer(err)
        if lost is not None:
            line = (f'{what} lost another process of the job ({lost}): that process ended or its node went away. '
                    'torchrun restarts every process when --max-restarts allows, and they continue from the newest '
                    'checkpoint; otherwise run the same command again with AUTO_RESUME True')
            run.logger.error('%s', line)
            raise PeerLost(line) from None
        log_path = os.path.join(run.run_dir, log_name)
        run.logger.exception('%s failed', what)
        err.add_note(f'{what} failed; this traceback is also in {log_path}')
        raise
    finally:
        try:
            comm.destroy_process_group(synchronize=ok)  # no rank leaves while another still writes
        finally:
            if run.lock is not None:
                run.lock.release()


class PeerLost(BaseException):
    """Another rank of the job is gone; ``str()`` is the one line saying so and how the job goes on. A
    BaseException, as ``RunStopped``: no ``except Exception`` on the way swallows it."""


class UserErrorExit(SystemExit):
    """Exit status 2 after the one ``error: ...`` line on stderr; ``str()`` is that line."""

    def __init__(self, line: str):
        super().__init__(USER_ERROR_STATUS)
        self.line = line

    def __str__(self) -> str:
        return self.line


def exit_on_error(main: Callable[[List[str]], Any], argv: Optional[List[str]] = None) -> Any:
    """Run ``main(argv)`` for ``if __name__ == '__main__'``: user errors become one line and exit status 2."""
    try:
        return main(sys.argv[1:] if argv is None else argv)
    except CreamError as err:
        line = 'error: ' + re.sub(r'\s*\n\s*', ' ', str(err)).strip()  # one line, whatever the message held
        print(line, file=sys.stderr, flush=True)
        raise UserErrorExit(line) from None
    except PeerLost as lost:
        print(f'error: {lost}', file=sys.stderr, flush=True)
        raise SystemExit(PEER_LOST_STATUS) from None
    except KeyboardInterrupt:
        raise SystemExit(INTERRUPTED_STATUS) from None
    except RunStopped:
        end_the_torchrun_job()
        raise SystemExit(STOPPED_STATUS) from None
