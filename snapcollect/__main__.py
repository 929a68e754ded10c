"""``python -m snapcollect``: the signal handlers go in before anything else is imported."""

import sys

try:
    from snapcollect.collect.signals import StopFlag

    _stop = StopFlag().install()
    from snapcollect.cli import main
except KeyboardInterrupt:
    print("snapcollect: stopped by SIGINT while starting; nothing done", file=sys.stderr)
    raise SystemExit(130) from None

raise SystemExit(main(stop=_stop))
