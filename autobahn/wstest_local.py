# -*- coding: utf-8 -*-
"""wstest, but every listening socket is bound to 127.0.0.1 only.

Python 2 (run with the autobahntestsuite virtualenv's python); takes exactly
the same arguments as `wstest`.

autobahntestsuite's server modes (fuzzingserver, echoserver, testeeserver, and
the embedded web server behind -u PORT) call
`autobahn.twisted.websocket.listenWS(factory, ctx)` / `reactor.listenTCP(port,
site)` with the default interface '' - all interfaces - and neither the
command line nor the spec file can change that. This wrapper wraps the
reactor's listenTCP / listenSSL so an "any address" interface ('', '0.0.0.0',
'::') becomes the loopback address (RTWIRE_AB_BIND, default 127.0.0.1), then
hands over to the suite's own entry point, autobahntestsuite.wstest.run().
"""

import os
import sys

# Must come first: it imports autobahntestsuite.choosereactor, which has to
# run before anything imports twisted.internet.reactor.
from autobahntestsuite import wstest

from twisted.internet import reactor

BIND = os.environ.get("RTWIRE_AB_BIND", "127.0.0.1")
_ANY = ("", "0.0.0.0", "::")


def _loopback_only(listen, iface_pos):
    def wrapper(*args, **kwargs):
        args = list(args)
        if "interface" in kwargs:
            if kwargs["interface"] in _ANY:
                kwargs["interface"] = BIND
        elif len(args) > iface_pos:
            if args[iface_pos] in _ANY:
                args[iface_pos] = BIND
        else:
            kwargs["interface"] = BIND
        return listen(*args, **kwargs)
    return wrapper


# listenTCP(port, factory, backlog=50, interface='')
# listenSSL(port, factory, contextFactory, backlog=50, interface='')
reactor.listenTCP = _loopback_only(reactor.listenTCP, 3)
reactor.listenSSL = _loopback_only(reactor.listenSSL, 4)

if __name__ == "__main__":
    sys.argv[0] = "wstest"
    sys.exit(wstest.run())
