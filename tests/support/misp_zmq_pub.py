"""A MISP-style ZeroMQ publisher for tests/zmq.rs, on real libzmq (pyzmq).

It binds a PUB socket the way MISP's app/files/scripts/mispzmq/mispzmq.py does and publishes each frame as one
message, `<topic> <json>`. Commands on stdin, one a line:
  SEND <frame>   publish the frame
  RESTART        close the socket, wait a second, bind again (a MISP restart)
  QUIT
"""
import sys
import time

import zmq

port = int(sys.argv[1])
ctx = zmq.Context()


def bind():
    s = ctx.socket(zmq.PUB)
    s.setsockopt(zmq.LINGER, 0)
    s.bind(f"tcp://127.0.0.1:{port}")
    return s


sock = bind()
print("READY", flush=True)
for line in sys.stdin:
    line = line.rstrip("\n")
    if line.startswith("SEND "):
        sock.send(line[5:].encode())
    elif line == "RESTART":
        sock.close()
        time.sleep(1)
        sock = bind()
        print("READY", flush=True)
    elif line == "QUIT":
        break
sock.close()
ctx.term()
